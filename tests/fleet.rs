//! Groups and the fleet queries (`/fleet/energy`, `/fleet/top`) over real WebSockets and a
//! private redis-server: their answers must equal a brute-force recomputation from the raw
//! samples of a randomised fleet (late and replayed readings, a meter reset, readings on hour
//! and day boundaries, charge points metering per connector, at connector 0, or both).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should stop the test loudly

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::Utc;
use common::reference::*;
use common::*;
use serde_json::{json, Value};

const REGISTER: &str = "Energy.Active.Import.Register";
const POWER: &str = "Power.Active.Import";

/// How a simulated charge point meters its energy.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Metering {
    /// Connector 1 only.
    Outlet,
    /// Connectors 1 and 2, two registers.
    TwoOutlets,
    /// Connector 0 only (the charge point as a whole).
    Whole,
    /// Connector 0 and connector 1 at the same instants: only connector 1 may count.
    Both,
}

/// One MeterValues to send.
struct Frame {
    connector: u32,
    t: i64,
    register: f64,
    sampled: Value,
}

async fn request(
    server: &ocpp_meter::RunningServer,
    method: &'static str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    spawn_request(server.http_addr, method, path, body)
        .await
        .unwrap()
}

#[actix_web::test]
async fn fleet_energy_and_top_equal_a_brute_force_recomputation_of_the_raw_samples() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let seed = std::env::var("FLEET_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5DEE_CE66_D1CE_4E5Du64);
    println!("FLEET_SEED={seed}");
    let mut rng = Rng(seed);

    let fleet = [
        ("FL-1", Metering::Outlet),
        ("FL-2", Metering::TwoOutlets),
        ("FL-3", Metering::Whole),
        ("FL-4", Metering::Both),
        ("FL-5", Metering::Outlet),
        ("FL-6", Metering::Whole),
    ];
    // 40 hours back from the last full hour: crosses at least one UTC midnight.
    let now = Utc::now().timestamp_millis();
    let end = now.div_euclid(H) * H;
    let start = end - 40 * H;
    let slot = 20 * 60_000;

    // Per charge point and register series (connector): readings in the order the server
    // processes them (late ones dropped), for the reference energy.
    let mut processed: HashMap<(&str, u32), Vec<(i64, f64)>> = HashMap::new();
    for (id, metering) in fleet {
        let mut cp = ChargePoint::connect(&server, id).await;
        cp.boot().await;
        let connectors: &[u32] = match metering {
            Metering::Outlet => &[1],
            Metering::TwoOutlets => &[1, 2],
            Metering::Whole => &[0],
            Metering::Both => &[0, 1],
        };
        let mut frames: Vec<Frame> = Vec::new();
        let mut registers: Vec<f64> = connectors
            .iter()
            .map(|_| 1000.0 * rng.below(50) as f64)
            .collect();
        let slots = (end - start) / slot;
        for i in 0..slots {
            // Some readings exactly on an hour (and so, once a day, a day) boundary.
            let t = if rng.below(5) == 0 {
                (start + i * slot).div_euclid(H) * H + H
            } else {
                start + i * slot + rng.below(slot as u64 - 1) as i64
            };
            if t >= end {
                continue;
            }
            let power = rng.below(22_000) as f64;
            for (c, connector) in connectors.iter().enumerate() {
                registers[c] += rng.below(4000) as f64 / 4.0;
                if i == slots / 2 && c == 0 && id == "FL-2" {
                    registers[c] = 5.0; // meter reset: counts nothing
                }
                let sampled = json!([
                    {"value": registers[c].to_string(), "measurand": REGISTER, "unit": "Wh"},
                    {"value": (power / 1000.0).to_string(), "measurand": POWER, "unit": "kW"},
                    {"value": "230.5", "measurand": "Voltage", "phase": "L1-N"},
                ]);
                frames.push(Frame {
                    connector: *connector,
                    t,
                    register: registers[c],
                    sampled,
                });
            }
        }
        // Arrival: mostly in order, some held back and sent late, some sent twice.
        let order = arrival_order(&mut rng, frames.len(), 10, 6, 8);
        for (n, &i) in order.iter().enumerate() {
            let f = &frames[i];
            let payload = meter_values(f.connector, None, &iso(f.t), f.sampled.clone());
            assert_eq!(cp.call("MeterValues", payload).await, json!({}));
            let seen = processed.entry((id, f.connector)).or_default();
            if seen.last().is_none_or(|(last, _)| f.t > *last) {
                seen.push((f.t, f.register));
            }
            if n == order.len() / 2 {
                // A flush midway: later readings pair with the baseline in Redis.
                request(
                    &server,
                    "GET",
                    &format!("/api/v1/charge-points/{id}/aggregates"),
                    None,
                )
                .await;
            }
        }
    }
    // Every charge point's roll-ups (and with them the fleet roll-up) written.
    for (id, _) in fleet {
        let (code, body) = request(
            &server,
            "GET",
            &format!("/api/v1/charge-points/{id}/aggregates"),
            None,
        )
        .await;
        assert_eq!(code, 200, "{body}");
    }

    // A group: three of the fleet and one charge point never seen.
    let site = ["FL-2", "FL-3", "FL-4", "FL-NEW"];
    let (code, body) = request(
        &server,
        "PUT",
        "/api/v1/groups/site-a",
        Some(json!({"name": "Site A", "charge_points": site})),
    )
    .await;
    assert_eq!(code, 201, "{body}");

    // The reference, per period: energy, samples and max power per charge point and bucket.
    for (period, len) in [("hour", H), ("day", D)] {
        let mut energy: BTreeMap<(&str, i64), f64> = BTreeMap::new();
        let mut samples: BTreeMap<(&str, i64), u64> = BTreeMap::new();
        let mut power: BTreeMap<(&str, i64), f64> = BTreeMap::new();
        for (id, metering) in fleet {
            let mut per_connector: BTreeMap<u32, BTreeMap<i64, f64>> = BTreeMap::new();
            for ((cp, connector), readings) in &processed {
                if *cp == id {
                    split_energy(len, readings, per_connector.entry(*connector).or_default());
                }
            }
            // Connectors' energy when any connector other than 0 metered; else connector 0's.
            let counted: Vec<&BTreeMap<i64, f64>> = if metering == Metering::Whole {
                vec![&per_connector[&0]]
            } else {
                per_connector
                    .iter()
                    .filter(|(c, _)| **c != 0)
                    .map(|(_, e)| e)
                    .collect()
            };
            for split in counted {
                for (b, wh) in split {
                    *energy.entry((id, *b)).or_insert(0.0) += wh;
                }
            }
            let (code, raw) = get(
                &server,
                &format!(
                    "/api/v1/charge-points/{id}/meter-values?from={}&to={}&limit=10000",
                    iso(start - H),
                    iso(end + H)
                ),
            )
            .await;
            assert_eq!(code, 200, "{raw}");
            for s in raw["samples"].as_array().unwrap() {
                let b = ms_of(&s["timestamp"]).div_euclid(len) * len;
                *samples.entry((id, b)).or_insert(0) += 1;
                if s["measurand"] == POWER && s["phase"].is_null() {
                    assert_eq!(s["unit"], "W", "kW is normalised");
                    let v = s["value"].as_f64().unwrap();
                    let m = power.entry((id, b)).or_insert(f64::NEG_INFINITY);
                    *m = m.max(v);
                }
            }
        }

        for group in [None, Some(&site[..])] {
            let members = |id: &str| group.is_none_or(|g| g.contains(&id));
            let query = format!(
                "/api/v1/fleet/energy?period={period}&from={}&to={}{}",
                iso(start.div_euclid(len) * len),
                iso(end + len),
                if group.is_some() { "&group=site-a" } else { "" }
            );
            let (code, body) = get(&server, &query).await;
            assert_eq!(code, 200, "{body}");
            assert_eq!(body["period"], period);
            let buckets = body["buckets"].as_array().unwrap();
            assert!(!buckets.is_empty());
            let mut starts = Vec::new();
            for bucket in buckets {
                let b = ms_of(&bucket["start"]);
                starts.push(b);
                let expected: f64 = energy
                    .iter()
                    .filter(|((id, s), _)| *s == b && members(id))
                    .map(|(_, wh)| wh)
                    .sum();
                let seen = bucket["energy_wh"].as_f64().unwrap();
                assert!(
                    close(seen, expected) || (seen - expected).abs() < 1e-6,
                    "{period} {} group {group:?}: {seen} vs {expected} (seed {seed})",
                    iso(b)
                );
                let active: BTreeSet<&str> = samples
                    .keys()
                    .filter(|(_, s)| *s == b)
                    .map(|(id, _)| *id)
                    .chain(
                        energy
                            .iter()
                            .filter(|((_, s), wh)| *s == b && **wh > 0.0)
                            .map(|((id, _), _)| *id),
                    )
                    .filter(|id| members(id))
                    .collect();
                assert_eq!(
                    bucket["charge_points"].as_u64().unwrap(),
                    active.len() as u64,
                    "{period} {} group {group:?}: {active:?} (seed {seed})",
                    iso(b)
                );
            }
            assert!(
                starts.windows(2).all(|w| w[1] - w[0] == len),
                "every bucket, in order"
            );
            let total: f64 = buckets
                .iter()
                .map(|b| b["energy_wh"].as_f64().unwrap())
                .sum();
            assert!(total > 0.0, "{period}: the fleet delivered energy");
        }

        if period != "hour" {
            continue;
        }
        // Top over a window of whole hours inside the data, fleet-wide and for the group.
        let (from, to) = (start + 3 * H, end - 2 * H);
        for (metric, group) in [
            ("energy_wh", None),
            ("energy_wh", Some(&site[..])),
            ("max_power_w", None),
            ("samples", None),
            ("samples", Some(&site[..])),
        ] {
            let members = |id: &str| group.is_none_or(|g| g.contains(&id));
            let mut expected: BTreeMap<&str, f64> = BTreeMap::new();
            let in_range = |b: i64| b >= from && b < to;
            match metric {
                "energy_wh" => {
                    for ((id, b), wh) in &energy {
                        if in_range(*b) && members(id) {
                            *expected.entry(id).or_insert(0.0) += wh;
                        }
                    }
                }
                "samples" => {
                    for ((id, b), n) in &samples {
                        if in_range(*b) && members(id) {
                            *expected.entry(id).or_insert(0.0) += *n as f64;
                        }
                    }
                }
                _ => {
                    for ((id, b), w) in &power {
                        if in_range(*b) && members(id) {
                            let m = expected.entry(id).or_insert(f64::NEG_INFINITY);
                            *m = m.max(*w);
                        }
                    }
                }
            }
            let query = format!(
                "/api/v1/fleet/top?metric={metric}&from={}&to={}&limit=4{}",
                iso(from),
                iso(to),
                if group.is_some() { "&group=site-a" } else { "" }
            );
            let (code, body) = get(&server, &query).await;
            assert_eq!(code, 200, "{body}");
            let items = body["items"].as_array().unwrap();
            let mut ranked: Vec<(&str, f64)> = expected.into_iter().collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
            ranked.truncate(4);
            assert_eq!(items.len(), ranked.len(), "{metric} {group:?}: {body}");
            for (item, (id, value)) in items.iter().zip(&ranked) {
                assert_eq!(
                    item["charge_point_id"], *id,
                    "{metric} {group:?}: {body} vs {ranked:?}"
                );
                assert!(
                    close(item["value"].as_f64().unwrap(), *value),
                    "{metric} {id}: {item} vs {value} (seed {seed})"
                );
            }
            let values: Vec<f64> = items.iter().map(|i| i["value"].as_f64().unwrap()).collect();
            assert!(values.windows(2).all(|w| w[0] >= w[1]), "largest first");
        }
    }
    server.shutdown().await;
}

#[actix_web::test]
async fn groups_are_stored_listed_replaced_and_deleted() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;

    let (code, body) = request(
        &server,
        "PUT",
        "/api/v1/groups/depot-north",
        Some(json!({"name": "Depot North", "charge_points": ["CP2", "CP1", "CP2"]})),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(
        body,
        json!({"group_id": "depot-north", "name": "Depot North", "charge_points": ["CP1", "CP2"]})
    );
    // What a GET answers can be edited and written back as is.
    let (code, mut read) = get(&server, "/api/v1/groups/depot-north").await;
    assert_eq!(code, 200);
    assert_eq!(read, body);
    read["charge_points"] = json!(["CP1", "CP3"]);
    let (code, body) = request(&server, "PUT", "/api/v1/groups/depot-north", Some(read)).await;
    assert_eq!(code, 200, "replaced: {body}");
    assert_eq!(body["charge_points"], json!(["CP1", "CP3"]));
    // A charge point may be in several groups.
    let (code, _) = request(
        &server,
        "PUT",
        "/api/v1/groups/all",
        Some(json!({"name": "All", "charge_points": ["CP1", "CP2", "CP3"]})),
    )
    .await;
    assert_eq!(code, 201);
    let (code, list) = get(&server, "/api/v1/groups").await;
    assert_eq!(code, 200);
    let ids: Vec<&str> = list["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["group_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["all", "depot-north"]);
    // Stored in Redis, where every instance sees it.
    assert!(redis.cli(&["HGET", "ocpp:groups", "all"]).contains("CP3"));

    for (path, body, named) in [
        (
            "/api/v1/groups/a%20b",
            json!({"charge_points": []}),
            "group id",
        ),
        (
            "/api/v1/groups/ok",
            json!({"charge_points": ["CP1", "C{P}"]}),
            "charge_points[1]",
        ),
        ("/api/v1/groups/ok", json!({"name": "x"}), "charge_points"),
        (
            "/api/v1/groups/ok",
            json!({"charge_points": [], "colour": "red"}),
            "colour",
        ),
        (
            "/api/v1/groups/ok",
            json!({"group_id": "other", "charge_points": []}),
            "group_id",
        ),
        ("/api/v1/groups/ok", json!([1]), "object"),
    ] {
        let (code, answer) = request(&server, "PUT", path, Some(body)).await;
        assert_eq!(code, 400, "{path}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(named),
            "{answer}"
        );
    }

    let (code, _) = request(&server, "DELETE", "/api/v1/groups/all", None).await;
    assert_eq!(code, 204);
    let (code, body) = get(&server, "/api/v1/groups/all").await;
    assert_eq!(code, 404, "{body}");
    let (code, _) = request(&server, "DELETE", "/api/v1/groups/all", None).await;
    assert_eq!(code, 404);

    // The fleet queries: an unknown group is a 404, bad parameters a 400 naming them.
    let (code, body) = get(&server, "/api/v1/fleet/energy?group=all").await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = get(&server, "/api/v1/fleet/top?group=all").await;
    assert_eq!(code, 404, "{body}");
    for (query, named) in [
        ("energy?period=week", "period"),
        ("energy?from=yesterday", "from"),
        ("energy?to=2024-13-01T00:00:00Z", "to"),
        (
            "energy?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from",
        ),
        (
            "energy?period=hour&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z",
            "31 days",
        ),
        ("energy?colour=red", "colour"),
        ("energy?group=a%20b", "group"),
        ("top?metric=volts", "metric"),
        ("top?limit=0", "limit"),
        ("top?limit=1001", "limit"),
        (
            "top?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "400 days",
        ),
    ] {
        let (code, body) = get(&server, &format!("/api/v1/fleet/{query}")).await;
        assert_eq!(code, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(named),
            "{query}: {body}"
        );
    }
    // An empty fleet answers every bucket with zeros.
    let (code, body) = get(
        &server,
        "/api/v1/fleet/energy?period=hour&from=2026-01-01T00:00:00Z&to=2026-01-01T03:00:00Z",
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["buckets"],
        json!([
            {"start": "2026-01-01T00:00:00.000Z", "energy_wh": 0.0, "charge_points": 0},
            {"start": "2026-01-01T01:00:00.000Z", "energy_wh": 0.0, "charge_points": 0},
            {"start": "2026-01-01T02:00:00.000Z", "energy_wh": 0.0, "charge_points": 0},
        ])
    );
    server.shutdown().await;
}

#[actix_web::test]
async fn a_bucket_written_before_the_fleet_rollup_existed_is_summarised_whole() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "FL-OLD").await;
    cp.boot().await;
    let hour = Utc::now().timestamp_millis().div_euclid(H) * H - 3 * H;
    let send = |t: i64, wh: f64| {
        meter_values(
            1,
            None,
            &iso(t),
            json!([{"value": wh.to_string(), "measurand": REGISTER, "unit": "Wh"}]),
        )
    };
    for (t, wh) in [(hour + 60_000, 100.0), (hour + 120_000, 400.0)] {
        assert_eq!(cp.call("MeterValues", send(t, wh)).await, json!({}));
    }
    let path = "/api/v1/charge-points/FL-OLD/aggregates";
    request(&server, "GET", path, None).await;
    // As an older version left it: no summary in the charge point's bucket, no fleet bucket.
    let bucket = format!("ocpp:{{FL-OLD}}:agg:hour:{}", hour / 1000);
    redis.cli(&["HDEL", &bucket, "/fleet"]);
    let fleet_key = format!("ocpp:{{fleet}}:agg:hour:{}", hour / 1000);
    redis.cli(&["DEL", &fleet_key]);
    // One more reading into the same hour: the whole bucket is summarised, not just it.
    assert_eq!(
        cp.call("MeterValues", send(hour + 180_000, 1000.0)).await,
        json!({})
    );
    request(&server, "GET", path, None).await;
    let (code, body) = get(
        &server,
        &format!(
            "/api/v1/fleet/energy?period=hour&from={}&to={}",
            iso(hour),
            iso(hour + H)
        ),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["buckets"][0]["energy_wh"], 900.0, "{body}");
    assert_eq!(body["buckets"][0]["charge_points"], 1, "{body}");
    let (_, top) = get(
        &server,
        &format!(
            "/api/v1/fleet/top?metric=samples&from={}&to={}",
            iso(hour),
            iso(hour + H)
        ),
    )
    .await;
    assert_eq!(
        top["items"],
        json!([{"charge_point_id": "FL-OLD", "value": 3}]),
        "{top}"
    );
    server.shutdown().await;
}

/// The merge script's answer that lets a retry repair the fleet roll-up: applied, it returns the
/// summary of each bucket it wrote; run again with the same sequence number (a retried flush,
/// or a replay after a crash between it and the fleet update), it changes nothing and still
/// returns the summaries. The fleet script then sets the same absolute value: idempotent.
#[test]
fn a_retried_merge_still_returns_its_summaries_and_the_fleet_update_is_idempotent() {
    let redis = RedisServer::start();
    let merge = include_str!("../actors/src/store/aggregate_merge.lua");
    let fleet = include_str!("../actors/src/store/fleet_merge.lua");
    let bucket = "ocpp:{CPX}:agg:hour:3600";
    let t = "3600000";
    let args = |seq: &str| -> Vec<String> {
        [
            "EVAL",
            merge,
            "2",
            "ocpp:{CPX}:agg:state",
            bucket,
            "applied:test",
            seq,
            "ocpp:{CPX}:agg:hour:",
            "ocpp:{CPX}:agg:day:",
            "0",
            "0",
            "7000",
            "1000000",
            "0",
            "2",
            // Two series of the bucket: a register (energy via the split below) and power.
            "2",
            "0",
            "1:Power.Active.Import:-:W",
            "2",
            "14000",
            "6000",
            "8000",
            "6000",
            t,
            "8000",
            t,
            "2",
            "0",
            "1:Energy.Active.Import.Register:-:Wh",
            "2",
            "300",
            "100",
            "200",
            "100",
            t,
            "200",
            t,
            // Register readings: 100 Wh then 200 Wh, one minute apart.
            "1",
            "1:Energy.Active.Import.Register:-:Wh",
            "2",
            "3600000",
            "100",
            "3660000",
            "200",
            "",
            "0",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |args: &[String]| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        redis.cli(&refs)
    };
    let first = run(&args("1"));
    let lines: Vec<&str> = first.lines().collect();
    // The split-off energy also reached the (undeclared) day bucket, which it reports too.
    assert_eq!(
        lines,
        ["1", bucket, "4|100|8000", "ocpp:{CPX}:agg:day:0", "0|100|"],
        "applied: {first}"
    );
    let again = run(&args("1"));
    assert_eq!(
        again.lines().collect::<Vec<_>>(),
        ["0", bucket, "4|100|8000"],
        "retried: {again}"
    );
    // Nothing was merged twice.
    let summary = redis.cli(&["HGET", bucket, "/fleet"]);
    assert_eq!(summary.trim(), "4|0|100|1|8000");

    let fleet_key = "ocpp:{fleet}:agg:hour:3600";
    let update =
        |summary: &str| redis.cli(&["EVAL", fleet, "1", fleet_key, "1", "1", "CPX", summary, "0"]);
    assert_eq!(update("4|100|8000").trim(), "1");
    assert_eq!(
        update("4|100|8000").trim(),
        "0",
        "the same value again changes nothing"
    );
    assert_eq!(redis.cli(&["HGET", fleet_key, "/energy_wh"]).trim(), "100");
    assert_eq!(
        redis.cli(&["HGET", fleet_key, "/charge_points"]).trim(),
        "1"
    );
    assert_eq!(update("6|250|8000").trim(), "1");
    assert_eq!(redis.cli(&["HGET", fleet_key, "/energy_wh"]).trim(), "250");
    assert_eq!(
        redis.cli(&["HGET", fleet_key, "/charge_points"]).trim(),
        "1"
    );

    // Several charge points and buckets in one call, as a pipeline of flushes sends them.
    let day_key = "ocpp:{fleet}:agg:day:0";
    let many = redis.cli(&[
        "EVAL",
        fleet,
        "2",
        fleet_key,
        day_key,
        "4",
        "1",
        "CPA",
        "1|10|",
        "0",
        "1",
        "CPB",
        "2|20|5",
        "0",
        "2",
        "CPA",
        "1|10|",
        "0",
        "1",
        "CPX",
        "6|250|8000",
        "0",
    ]);
    assert_eq!(many.trim(), "3", "CPX's summary is unchanged");
    let field = |key: &str, f: &str| redis.cli(&["HGET", key, f]).trim().to_owned();
    assert_eq!(field(fleet_key, "/energy_wh"), "280");
    assert_eq!(field(fleet_key, "/charge_points"), "3");
    assert_eq!(field(day_key, "/energy_wh"), "10");
    assert_eq!(field(day_key, "/charge_points"), "1");
    assert_eq!(field(fleet_key, "CPB"), "2|20|5");
}

/// The start-up repair of the fleet roll-up: after a crash between a merge and its fleet
/// update, the fleet bucket lacks what the charge point's bucket holds; `fleet_rollup::repair`
/// (run by the write-ahead log replay for the readings Redis's roll-ups already hold) copies it
/// again, and changes nothing when nothing is missing.
#[actix_web::test]
async fn the_fleet_rollup_is_repaired_from_the_charge_point_buckets() {
    use actors::redis_pool::{build_pool, PoolSettings, RedisTarget};
    use actors::store::aggregates::Period;
    use actors::store::fleet_rollup;

    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "FL-CRASH").await;
    cp.boot().await;
    let hour = Utc::now().timestamp_millis().div_euclid(H) * H - 2 * H;
    for (t, wh) in [(hour + 60_000, 100.0), (hour + 600_000, 350.0)] {
        let payload = meter_values(
            2,
            None,
            &iso(t),
            json!([{"value": wh.to_string(), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]),
        );
        assert_eq!(cp.call("MeterValues", payload).await, json!({}));
    }
    request(
        &server,
        "GET",
        "/api/v1/charge-points/FL-CRASH/aggregates",
        None,
    )
    .await;
    let energy = || async {
        let (code, body) = get(
            &server,
            &format!(
                "/api/v1/fleet/energy?period=hour&from={}&to={}",
                iso(hour),
                iso(hour + H)
            ),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        body["buckets"][0]["energy_wh"].as_f64().unwrap()
    };
    assert_eq!(energy().await, 250.0);
    let fleet_key = format!("ocpp:{{fleet}}:agg:hour:{}", hour / 1000);
    let day_start = Period::Day.start_of(hour);
    let day_key = format!("ocpp:{{fleet}}:agg:day:{}", day_start / 1000);
    redis.cli(&["DEL", &fleet_key, &day_key]);
    assert_eq!(energy().await, 0.0, "the fleet update is lost");

    let pool = build_pool(&PoolSettings {
        target: RedisTarget::Standalone(redis.url()),
        pool_size: 1,
        connect_timeout: std::time::Duration::from_secs(2),
        response_timeout: std::time::Duration::from_secs(5),
        wait_replicas: 0,
        wait_timeout: std::time::Duration::from_secs(1),
    })
    .unwrap();
    let buckets = [
        ("FL-CRASH".to_owned(), Period::Hour, hour),
        ("FL-CRASH".to_owned(), Period::Day, day_start),
        // A bucket with nothing in it is left alone.
        ("FL-CRASH".to_owned(), Period::Hour, hour - H),
    ];
    assert_eq!(
        fleet_rollup::repair(&pool, &buckets, (30, 365))
            .await
            .unwrap(),
        2
    );
    assert_eq!(energy().await, 250.0);
    assert_eq!(
        redis.cli(&["HGET", &fleet_key, "FL-CRASH"]).trim(),
        "2|250|"
    );
    assert!(
        redis
            .cli(&["TTL", &fleet_key])
            .trim()
            .parse::<i64>()
            .unwrap()
            > 0,
        "it expires"
    );
    // Nothing missing: nothing changes.
    assert_eq!(
        fleet_rollup::repair(&pool, &buckets, (30, 365))
            .await
            .unwrap(),
        0
    );
    server.shutdown().await;
}
