//! The fleet transaction queries over real WebSockets and a private redis-server: the list, its
//! cursor paging and filters, the CSV export and the energy per idTag must equal a brute-force
//! recomputation from the raw samples read back through the API, on a randomised fleet
//! (several charge points, connectors and idTags; out-of-order and replayed readings, a meter
//! reset, readings on hour and day boundaries, a transaction across midnight UTC). The seed is
//! printed, and `FLEET_SEED=<n>` replays one.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should stop the test loudly

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use common::reference::*;
use common::*;
use ocpp_meter::RunningServer;
use serde_json::{json, Value};

const MIN: i64 = 60_000;
const REGISTER: &str = "Energy.Active.Import.Register";
const POWER: &str = "Power.Active.Import";
/// idTags as charge points send them: case variants of one tag, and tags a spreadsheet would
/// take for formulas or that need CSV quoting.
const TAGS: [&str; 6] = ["TAGA", "taga", "=SUM(1+1)", "@cmd", "-x,\"y\"", "Tag{B}"];

/// A transaction as the test sent it.
#[derive(Debug, Clone)]
struct Txn {
    id: i64,
    cp: String,
    connector: u32,
    id_tag: String,
    meter_start: i64,
    start_ms: i64,
    /// `(meter_stop, stop_ms, reason)`; `None` while running.
    stop: Option<(i64, i64, String)>,
}

/// One raw sample as `/meter-values` answers it, the fields the rules look at.
#[derive(Debug, Clone)]
struct Raw {
    t: i64,
    connector: u32,
    txn: Option<i64>,
    measurand: String,
    phase: Option<String>,
    location: String,
    unit: String,
    value: f64,
}

/// The transaction's own readings of `measurand`: its id, its connector, no phase, Outlet,
/// oldest first, each timestamp once.
fn own(raw: &[Raw], txn: &Txn, measurand: &str, unit: &str) -> Vec<(i64, f64)> {
    let mut out: Vec<(i64, f64)> = raw
        .iter()
        .filter(|s| {
            s.txn == Some(txn.id)
                && s.connector == txn.connector
                && s.measurand == measurand
                && s.phase.is_none()
                && s.location == "Outlet"
                && s.unit == unit
        })
        .map(|s| (s.t, s.value))
        .collect();
    out.sort_by_key(|r| r.0);
    out.dedup_by_key(|r| r.0);
    out
}

/// The expected list item's derived fields: `(energy_wh, duration_s (None: running), max_power_w)`.
fn derived(raw: &[Raw], txn: &Txn) -> (Option<f64>, Option<f64>, Option<f64>) {
    let power = own(raw, txn, POWER, "W")
        .iter()
        .map(|r| r.1)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    match &txn.stop {
        Some((meter_stop, stop_ms, _)) => (
            Some((meter_stop - txn.meter_start) as f64),
            Some((stop_ms - txn.start_ms) as f64 / 1000.0),
            power,
        ),
        None => (
            own(raw, txn, REGISTER, "Wh")
                .last()
                .map(|r| r.1 - txn.meter_start as f64),
            None,
            power,
        ),
    }
}

/// Which transactions a filtered query should list.
type Keep = Box<dyn Fn(&Txn) -> bool>;

/// Index order: start time, then id as text (Redis orders equal scores by member).
fn sort_index_order(txns: &mut [&Txn]) {
    txns.sort_by(|a, b| {
        a.start_ms
            .cmp(&b.start_ms)
            .then_with(|| a.id.to_string().cmp(&b.id.to_string()))
    });
}

/// GET returning status, headers we check, and the body as text.
async fn get_text(server: &RunningServer, path: &str) -> (u16, String, String, String) {
    let url = format!("http://{}{}", server.http_addr, path);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let mut response = client.get(&url).send().await.expect("http request");
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let content_type = header("content-type");
    let disposition = header("content-disposition");
    let body = response.body().limit(64 << 20).await.expect("body");
    (
        status,
        content_type,
        disposition,
        String::from_utf8(body.to_vec()).expect("UTF-8"),
    )
}

/// A small RFC 4180 reader: rows of cells; quoted cells may hold commas, CR, LF and doubled
/// quotes; every row must end in CRLF.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted_cell = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if cell.is_empty() && !quoted_cell => {
                quoted_cell = true;
                loop {
                    match chars.next().expect("unterminated quoted cell") {
                        '"' if chars.peek() == Some(&'"') => {
                            chars.next();
                            cell.push('"');
                        }
                        '"' => break,
                        other => cell.push(other),
                    }
                }
            }
            ',' => {
                row.push(std::mem::take(&mut cell));
                quoted_cell = false;
            }
            '\r' => {
                assert_eq!(chars.next(), Some('\n'), "CR without LF outside quotes");
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
                quoted_cell = false;
            }
            '\n' => panic!("bare LF outside quotes"),
            other => {
                assert!(!quoted_cell, "text after a closing quote");
                cell.push(other);
            }
        }
    }
    assert!(row.is_empty() && cell.is_empty(), "last row without CRLF");
    rows
}

/// The cell a text value must become in the export (OWASP prefix for formula starts).
fn guarded(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

struct Fleet {
    txns: Vec<Txn>,
    raw: Vec<Raw>,
    from: i64,
    to: i64,
}

/// Sends a randomised fleet's transactions; returns them with the raw samples read back.
async fn build_fleet(server: &RunningServer, rng: &mut Rng) -> Fleet {
    let now = Utc::now().timestamp_millis();
    let midnight = now.div_euclid(D) * D - D; // yesterday 00:00 UTC
    let first = midnight - 10 * H;
    let mut txns = Vec::new();
    for c in 0..4i64 {
        let cp_id = format!("CP-{c}");
        let mut cp = ChargePoint::connect(server, &cp_id).await;
        cp.boot().await;
        for connector in 1..=2u32 {
            let mut t = first + rng.range(0, 90 * MIN);
            let mut register = rng.range(0, 50_000) as f64;
            let count = 5 + rng.below(3);
            for n in 0..count {
                // CP-0 connector 1 has one transaction across midnight, readings on it.
                let (start, length) = if c == 0 && connector == 1 && n == 1 {
                    (midnight - 2 * H + 17 * MIN, 4 * H)
                } else {
                    (t, rng.range(20 * MIN, 3 * H))
                };
                let start = start.max(t);
                let running = n + 1 == count && (c + connector as i64) % 3 == 0;
                let tag = TAGS[rng.below(TAGS.len() as u64) as usize].to_owned();
                let meter_start = register.round() as i64;
                let answer = cp
                    .call(
                        "StartTransaction",
                        json!({"connectorId": connector, "idTag": tag,
                               "meterStart": meter_start, "timestamp": iso(start)}),
                    )
                    .await;
                let id = answer["transactionId"].as_i64().expect("transaction id");
                let end = start + length;
                // Readings: about every 10-25 minutes, some exactly on hour boundaries (and
                // midnight), the register rising; one transaction has a meter reset.
                let mut frames: Vec<Value> = Vec::new();
                let mut at = start;
                let reset_here = c == 1 && connector == 2 && n == 1;
                while at < end {
                    let next_hour = (at.div_euclid(H) + 1) * H;
                    let previous = at;
                    at = if rng.below(3) == 0 && next_hour < end {
                        next_hour
                    } else {
                        at + rng.range(10 * MIN, 25 * MIN)
                    };
                    if c == 0 && connector == 1 && n == 1 && previous < midnight && at > midnight {
                        at = midnight;
                    }
                    if at >= end {
                        break;
                    }
                    register += rng.range(0, 4000) as f64 / 4.0;
                    if reset_here && frames.len() == 2 {
                        register = rng.range(0, 20) as f64;
                    }
                    let (value, unit) = if rng.below(4) == 0 {
                        (format!("{}", register / 1000.0), "kWh")
                    } else {
                        (format!("{register}"), "Wh")
                    };
                    let mut sampled = vec![
                        json!({"value": value, "measurand": REGISTER, "unit": unit}),
                        json!({"value": format!("{}", rng.below(11_000)), "measurand": POWER, "unit": "W"}),
                        json!({"value": format!("{}", 20_000 + rng.below(1000)), "measurand": POWER, "unit": "W", "phase": "L1"}),
                    ];
                    if rng.below(5) == 0 {
                        sampled.push(json!({"value": format!("{}", rng.below(22)), "measurand": POWER, "unit": "kW"}));
                        sampled.remove(1);
                    }
                    frames.push(meter_values(connector, Some(id), &iso(at), json!(sampled)));
                }
                // Arrival: shuffled (out of order), some sent twice (replays).
                let mut order: Vec<usize> = (0..frames.len()).collect();
                for i in (1..order.len()).rev() {
                    if rng.below(3) == 0 {
                        let j = rng.below(i as u64 + 1) as usize;
                        order.swap(i, j);
                    }
                }
                for &i in &order {
                    assert_eq!(cp.call("MeterValues", frames[i].clone()).await, json!({}));
                    if rng.below(6) == 0 {
                        assert_eq!(cp.call("MeterValues", frames[i].clone()).await, json!({}));
                    }
                }
                // A reading without a transaction on the same connector: nobody's energy.
                let loose = meter_values(
                    connector,
                    None,
                    &iso(start + 1000),
                    json!([{"value": "999999", "measurand": REGISTER, "unit": "Wh"}]),
                );
                assert_eq!(cp.call("MeterValues", loose).await, json!({}));
                let stop = if running {
                    None
                } else {
                    let meter_stop = register.round() as i64;
                    let reason = ["Local", "EVDisconnected", "Remote"][rng.below(3) as usize];
                    cp.call(
                        "StopTransaction",
                        json!({"transactionId": id, "meterStop": meter_stop,
                               "timestamp": iso(end), "reason": reason}),
                    )
                    .await;
                    Some((meter_stop, end, reason.to_owned()))
                };
                txns.push(Txn {
                    id,
                    cp: cp_id.clone(),
                    connector,
                    id_tag: tag,
                    meter_start,
                    start_ms: start,
                    stop,
                });
                t = end + rng.range(5 * MIN, 60 * MIN);
            }
        }
    }
    assert!(
        txns.iter()
            .any(|t| t.start_ms < midnight && t.stop.as_ref().is_some_and(|s| s.1 > midnight)),
        "a transaction spans midnight"
    );
    assert!(txns.iter().any(|t| t.stop.is_none()), "some are running");

    let from = first - H;
    let to = now + H;
    let mut raw = Vec::new();
    for c in 0..4 {
        let (code, body) = get(
            server,
            &format!(
                "/api/v1/charge-points/CP-{c}/meter-values?from={}&to={}&limit=10000",
                iso(from),
                iso(to)
            ),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        for s in body["samples"].as_array().unwrap() {
            raw.push(Raw {
                t: ms_of_str(s["timestamp"].as_str().unwrap()),
                connector: s["connector_id"].as_u64().unwrap() as u32,
                txn: s["transaction_id"].as_i64(),
                measurand: s["measurand"].as_str().unwrap().to_owned(),
                phase: s["phase"].as_str().map(str::to_owned),
                location: s["location"].as_str().unwrap().to_owned(),
                unit: s["unit"].as_str().unwrap().to_owned(),
                value: s["value"].as_f64().unwrap(),
            });
        }
    }
    Fleet {
        txns,
        raw,
        from,
        to,
    }
}

/// Walks every page of `query` with `limit`; returns the items in order.
async fn walk(server: &RunningServer, query: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut path = format!("/api/v1/transactions?{query}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (code, body) = get(server, &path).await;
        assert_eq!(code, 200, "{path}: {body}");
        let page = body["items"].as_array().unwrap();
        assert!(page.len() <= limit);
        items.extend(page.iter().cloned());
        match body["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(page.len(), limit, "a page before the last is full");
                cursor = Some(next.to_owned());
            }
            None => return items,
        }
    }
    panic!("paging does not end");
}

/// Checks `items` against the expected transactions, in order.
fn check_items(seed: u64, what: &str, items: &[Value], expected: &[&Txn], raw: &[Raw]) {
    let got: Vec<i64> = items
        .iter()
        .map(|i| i["transaction_id"].as_i64().unwrap())
        .collect();
    let want: Vec<i64> = expected.iter().map(|t| t.id).collect();
    assert_eq!(got, want, "seed {seed}, {what}: ids in order");
    let now = Utc::now().timestamp_millis();
    for (item, txn) in items.iter().zip(expected) {
        let context = format!("seed {seed}, {what}, transaction {}: {item}", txn.id);
        assert_eq!(item["charge_point_id"], json!(txn.cp), "{context}");
        assert_eq!(item["connector_id"], json!(txn.connector), "{context}");
        assert_eq!(item["id_tag"], json!(txn.id_tag), "{context}");
        assert_eq!(item["meter_start"], json!(txn.meter_start), "{context}");
        assert_eq!(
            ms_of_str(item["start_time"].as_str().unwrap()),
            txn.start_ms,
            "{context}"
        );
        let (energy, duration, power) = derived(raw, txn);
        let number = |field: &str| item[field].as_f64();
        match (energy, number("energy_wh")) {
            (Some(a), Some(b)) => assert!(close(a, b), "{context}: energy {a}"),
            (a, b) => assert_eq!(a, b, "{context}: energy"),
        }
        match (power, number("max_power_w")) {
            (Some(a), Some(b)) => assert!(close(a, b), "{context}: power {a}"),
            (a, b) => assert_eq!(a, b, "{context}: power"),
        }
        match (&txn.stop, duration) {
            (Some((meter_stop, stop_ms, reason)), Some(duration)) => {
                assert_eq!(item["state"], json!("stopped"), "{context}");
                assert_eq!(item["meter_stop"], json!(meter_stop), "{context}");
                assert_eq!(ms_of_str(item["stop_time"].as_str().unwrap()), *stop_ms);
                assert_eq!(item["stop_reason"], json!(reason), "{context}");
                assert!(close(duration, number("duration_s").unwrap()), "{context}");
            }
            _ => {
                assert_eq!(item["state"], json!("active"), "{context}");
                let d = number("duration_s").unwrap();
                let expected = (now - txn.start_ms) as f64 / 1000.0;
                assert!(d <= expected + 0.001 && d > expected - 60.0, "{context}");
            }
        }
    }
}

/// Energy per idTag against the brute force, by hour and by day, for every tag of the fleet
/// (in both cases) and one without transactions.
async fn check_id_tag_energy(
    server: &RunningServer,
    seed: u64,
    all: &[&Txn],
    raw: &[Raw],
    from: i64,
    to: i64,
) {
    let now = Utc::now().timestamp_millis();
    for tag in [
        "TAGA",
        "taga",
        "=SUM(1+1)",
        "@cmd",
        "-x,\"y\"",
        "Tag{B}",
        "nobody",
    ] {
        for (period, len) in [("hour", H), ("day", D)] {
            let encoded: String = tag
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            let (code, body) = get(
                server,
                &format!(
                    "/api/v1/id-tags/{encoded}/energy?period={period}&from={}&to={}",
                    iso(from),
                    iso(to)
                ),
            )
            .await;
            assert_eq!(code, 200, "{body}");
            assert_eq!(body["id_tag"], json!(tag));
            assert_eq!(body["period"], json!(period));
            let mut energy = BTreeMap::new();
            let mine: Vec<&Txn> = all
                .iter()
                .copied()
                .filter(|t| t.id_tag.eq_ignore_ascii_case(tag))
                .collect();
            for txn in &mine {
                split_energy(len, &own(raw, txn, REGISTER, "Wh"), &mut energy);
            }
            let mut start = from.div_euclid(len) * len;
            if start < from {
                start += len;
            }
            let first = start;
            let buckets = body["buckets"].as_array().unwrap();
            let mut total = 0.0;
            for bucket in buckets {
                let b = ms_of_str(bucket["start"].as_str().unwrap());
                assert_eq!(b, start, "seed {seed}: {tag} {period}: dense buckets");
                start += len;
                let want = energy.get(&b).copied().unwrap_or(0.0);
                let got = bucket["energy_wh"].as_f64().unwrap();
                assert!(
                    close(want, got),
                    "seed {seed}: {tag} {period} {b}: {got} != {want}"
                );
                total += got;
                let running = mine
                    .iter()
                    .filter(|t| {
                        let stop = t.stop.as_ref().map_or(now, |s| s.1);
                        t.start_ms < b + len && stop > b
                    })
                    .count();
                assert_eq!(
                    bucket["transactions"],
                    json!(running),
                    "seed {seed}: {tag} {period} {b}"
                );
            }
            assert!(start >= to, "seed {seed}: buckets up to `to`");
            let in_range: f64 = energy.range(first..start).map(|(_, e)| e).sum();
            assert!(close(total, in_range), "seed {seed}: {tag} {period}");
            if period == "hour" {
                assert!(
                    in_range > 0.0 || mine.is_empty(),
                    "seed {seed}: {tag} booked energy"
                );
            }
        }
    }
}

#[actix_web::test]
async fn transaction_queries_equal_a_brute_force_recomputation() {
    let seed = std::env::var("FLEET_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64 | 1);
    eprintln!("fleet_transactions seed: {seed} (FLEET_SEED={seed} replays it)");
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut rng = Rng(seed);
    let fleet = build_fleet(&server, &mut rng).await;
    let (raw, from, to) = (&fleet.raw, fleet.from, fleet.to);
    let range = format!("from={}&to={}", iso(from), iso(to));
    let mut all: Vec<&Txn> = fleet.txns.iter().collect();
    sort_index_order(&mut all);

    // The whole fleet, paged through with several page sizes: each transaction once, in order.
    for limit in [1, 7, 1000] {
        let items = walk(&server, &range, limit).await;
        check_items(seed, &format!("all, limit {limit}"), &items, &all, raw);
    }
    // The cache of stopped transactions' highest power is in their records now and agrees.
    let stopped = all.iter().find(|t| t.stop.is_some()).unwrap();
    let cached = redis.cli(&["HGET", &format!("ocpp:txn:{}", stopped.id), "max_power_w"]);
    assert_eq!(
        cached.trim().parse::<f64>().ok(),
        derived(raw, stopped).2,
        "seed {seed}: cached power"
    );
    let items = walk(&server, &range, 10).await;
    check_items(seed, "all, from the cache", &items, &all, raw);

    // Filters, alone and together.
    let mid = all[all.len() / 2].start_ms;
    let group: HashSet<&str> = ["CP-0", "CP-2"].into();
    let (code, body) = spawn_request(
        server.http_addr,
        "PUT",
        "/api/v1/groups/west",
        Some(json!({"name": "West", "charge_points": ["CP-0", "CP-2", "CP-9"]})),
    )
    .await
    .unwrap();
    assert!(code == 200 || code == 201, "{body}");
    let cases: Vec<(String, Keep)> = vec![
        (
            format!("from={}&to={}", iso(mid), iso(to)),
            Box::new(move |t: &Txn| t.start_ms >= mid),
        ),
        (
            format!("from={}&to={}", iso(from), iso(mid)),
            Box::new(move |t: &Txn| t.start_ms < mid),
        ),
        (
            format!("{range}&charge_point=CP-1"),
            Box::new(|t: &Txn| t.cp == "CP-1"),
        ),
        (
            format!("{range}&id_tag=tagA"),
            Box::new(|t: &Txn| t.id_tag.eq_ignore_ascii_case("taga")),
        ),
        (
            format!("{range}&id_tag=%3DSUM(1%2B1)"),
            Box::new(|t: &Txn| t.id_tag == "=SUM(1+1)"),
        ),
        (
            format!("{range}&state=active"),
            Box::new(|t: &Txn| t.stop.is_none()),
        ),
        (
            format!("{range}&state=stopped"),
            Box::new(|t: &Txn| t.stop.is_some()),
        ),
        (
            format!("{range}&group=west"),
            Box::new(move |t: &Txn| group.contains(t.cp.as_str())),
        ),
        (
            format!("{range}&group=west&id_tag=TAGA&state=stopped"),
            Box::new(move |t: &Txn| {
                (t.cp == "CP-0" || t.cp == "CP-2")
                    && t.id_tag.eq_ignore_ascii_case("taga")
                    && t.stop.is_some()
            }),
        ),
        (
            format!("{range}&charge_point=CP-3&group=west"),
            Box::new(|_: &Txn| false),
        ),
        (
            format!("{range}&charge_point=CP-2&id_tag=Tag%7BB%7D"),
            Box::new(|t: &Txn| t.cp == "CP-2" && t.id_tag == "Tag{B}"),
        ),
    ];
    for (query, keep) in &cases {
        let expected: Vec<&Txn> = all.iter().copied().filter(|t| keep(t)).collect();
        for limit in [2, 1000] {
            let items = walk(&server, query, limit).await;
            check_items(seed, query, &items, &expected, raw);
        }
    }

    // CSV: the same rows, every page, RFC 4180, formula cells guarded, numbers left alone.
    for (query, keep) in [
        (range.clone(), &(Box::new(|_: &Txn| true) as Keep)),
        (cases[7].0.clone(), &cases[7].1),
    ] {
        let (code, content_type, disposition, text) =
            get_text(&server, &format!("/api/v1/transactions.csv?{query}")).await;
        assert_eq!(code, 200, "{text}");
        assert_eq!(content_type, "text/csv; charset=utf-8");
        assert_eq!(disposition, "attachment; filename=\"transactions.csv\"");
        let rows = parse_csv(&text);
        let expected: Vec<&Txn> = all.iter().copied().filter(|t| keep(t)).collect();
        assert_eq!(rows.len(), expected.len() + 1, "seed {seed}: header + rows");
        assert_eq!(
            rows[0].join(","),
            "transaction_id,charge_point_id,connector_id,id_tag,state,start_time,stop_time,\
             meter_start,meter_stop,energy_wh,duration_s,max_power_w,stop_id_tag,stop_reason"
        );
        let items = walk(&server, &query, 1000).await;
        for ((row, txn), item) in rows[1..].iter().zip(&expected).zip(&items) {
            let context = format!("seed {seed}: {row:?}");
            assert_eq!(row.len(), 14, "{context}");
            assert_eq!(row[0], txn.id.to_string(), "{context}");
            assert_eq!(row[1], guarded(&txn.cp), "{context}");
            assert_eq!(row[2], txn.connector.to_string(), "{context}");
            assert_eq!(row[3], guarded(&txn.id_tag), "{context}");
            assert_eq!(row[5], iso(txn.start_ms), "{context}");
            assert_eq!(row[7], txn.meter_start.to_string(), "{context}");
            let (energy, _, power) = derived(raw, txn);
            let num = |cell: &str| (!cell.is_empty()).then(|| cell.parse::<f64>().unwrap());
            match (energy, num(&row[9])) {
                (Some(a), Some(b)) => assert!(close(a, b), "{context}"),
                (a, b) => assert_eq!(a, b, "{context}"),
            }
            match (power, num(&row[11])) {
                (Some(a), Some(b)) => assert!(close(a, b), "{context}"),
                (a, b) => assert_eq!(a, b, "{context}"),
            }
            match &txn.stop {
                Some((meter_stop, stop_ms, reason)) => {
                    assert_eq!(row[4], "stopped", "{context}");
                    assert_eq!(row[6], iso(*stop_ms), "{context}");
                    assert_eq!(row[8], meter_stop.to_string(), "{context}");
                    assert_eq!(row[13], guarded(reason), "{context}");
                    assert_eq!(
                        num(&row[10]),
                        item["duration_s"].as_f64(),
                        "{context}: as the list"
                    );
                }
                None => {
                    assert_eq!(row[4], "active", "{context}");
                    assert_eq!(row[6], "", "{context}");
                }
            }
        }
        // Formula-looking tags are guarded; negative energy stays a bare number.
        assert!(
            !text.contains(",=SUM") && !text.contains(",@cmd") && !text.contains(",-x"),
            "seed {seed}: unguarded formula cell"
        );
        if let Some(negative) = expected
            .iter()
            .find(|t| derived(raw, t).0.is_some_and(|e| e < 0.0))
        {
            let e = derived(raw, negative).0.unwrap();
            assert!(text.contains(&format!(",{e},")), "seed {seed}: bare {e}");
        }
    }

    check_id_tag_energy(&server, seed, &all, raw, from, to).await;

    // Bad parameters are named; an unknown group is a 404.
    for (path, name) in [
        ("/api/v1/transactions?from=yesterday", "from"),
        ("/api/v1/transactions?to=2026-13-01T00:00:00Z", "to"),
        ("/api/v1/transactions?state=paused", "state"),
        ("/api/v1/transactions?limit=0", "limit"),
        ("/api/v1/transactions?limit=1001", "limit"),
        ("/api/v1/transactions?limit=ten", "limit"),
        ("/api/v1/transactions?cursor=%21%21", "cursor"),
        ("/api/v1/transactions?cursor=MTIz", "cursor"),
        ("/api/v1/transactions?charge_point=a%7Bb%7D", "charge_point"),
        (
            "/api/v1/transactions?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from",
        ),
        (
            "/api/v1/transactions?from=2024-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from..to",
        ),
        ("/api/v1/transactions.csv?state=x", "state"),
        ("/api/v1/transactions.csv?limit=5", "limit"),
        ("/api/v1/id-tags/TAGA/energy?period=week", "period"),
        ("/api/v1/id-tags/TAGA/energy?from=x", "from"),
        (
            "/api/v1/id-tags/TAGA/energy?period=hour&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z",
            "from..to",
        ),
        ("/api/v1/id-tags/ABCDEFGHIJKLMNOPQRSTU/energy", "id_tag"),
    ] {
        let (code, body) = get(&server, path).await;
        assert_eq!(code, 400, "{path}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(name), "{path}: {error} names {name}");
    }
    for path in [
        "/api/v1/transactions?group=nowhere",
        "/api/v1/transactions.csv?group=nowhere",
    ] {
        let (code, body) = get(&server, path).await;
        assert_eq!(code, 404, "{path}: {body}");
    }

    // A deployment from before the fleet index: the indexes are rebuilt on first use.
    let mut keys: Vec<String> = redis
        .cli(&["KEYS", "ocpp:id-tag:*"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(keys.len() >= 5, "{keys:?}");
    keys.extend(["ocpp:txns".to_owned(), "ocpp:txns:backfilled".to_owned()]);
    let mut del = vec!["DEL"];
    del.extend(keys.iter().map(String::as_str));
    redis.cli(&del);
    let items = walk(&server, &range, 1000).await;
    check_items(seed, "after the backfill", &items, &all, raw);
    let items = walk(&server, &format!("{range}&id_tag=taga"), 3).await;
    let expected: Vec<&Txn> = all
        .iter()
        .copied()
        .filter(|t| t.id_tag.eq_ignore_ascii_case("taga"))
        .collect();
    check_items(seed, "id tag after the backfill", &items, &expected, raw);

    server.shutdown().await;
}

#[actix_web::test]
async fn cursors_stay_exact_under_concurrent_starts_and_equal_start_times() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-X").await;
    cp.boot().await;
    let base = Utc::now().timestamp_millis().div_euclid(H) * H - 5 * H;
    let start = |cp_connector: u32, at: i64| json!({"connectorId": cp_connector, "idTag": "T", "meterStart": 0, "timestamp": iso(at)});
    let mut ids = Vec::new();
    // Ten transactions on ten connectors, four of them starting at the same millisecond.
    for (k, at) in [0, 1, 2, 2, 2, 2, 3, 4, 5, 6].iter().enumerate() {
        let answer = cp
            .call("StartTransaction", start(k as u32 + 1, base + at * MIN))
            .await;
        ids.push((base + at * MIN, answer["transactionId"].as_i64().unwrap()));
    }
    let query = format!(
        "charge_point=CP-X&from={}&to={}",
        iso(base - H),
        iso(base + 2 * H)
    );
    let path = |cursor: &str| format!("/api/v1/transactions?{query}&limit=3{cursor}");
    let (code, first) = get(&server, &path("")).await;
    assert_eq!(code, 200, "{first}");
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    // Started meanwhile: one before the cursor (never shown), one after (shown once).
    let early = cp.call("StartTransaction", start(11, base + MIN / 2)).await["transactionId"]
        .as_i64()
        .unwrap();
    let late = cp
        .call("StartTransaction", start(12, base + 10 * MIN))
        .await["transactionId"]
        .as_i64()
        .unwrap();
    let mut seen: Vec<i64> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["transaction_id"].as_i64().unwrap())
        .collect();
    let mut cursor = Some(cursor);
    while let Some(c) = cursor {
        let (code, page) = get(&server, &path(&format!("&cursor={c}"))).await;
        assert_eq!(code, 200, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["transaction_id"].as_i64().unwrap()),
        );
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    ids.push((base + 10 * MIN, late));
    ids.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.to_string().cmp(&b.1.to_string()))
    });
    let expected: Vec<i64> = ids.iter().map(|(_, id)| *id).collect();
    assert_eq!(seen, expected);
    assert!(!seen.contains(&early));
    // The same list, id by id from a fresh start, includes the early one in its place.
    let all = walk(&server, &query, 1).await;
    assert_eq!(all.len(), expected.len() + 1);
    server.shutdown().await;
}

#[actix_web::test]
async fn the_csv_export_walks_every_page() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-Y").await;
    cp.boot().await;
    let base = Utc::now().timestamp_millis().div_euclid(H) * H - 30 * H;
    // More transactions than one page of the export reads (500), several per start time.
    let mut expected = Vec::new();
    for k in 0..1234i64 {
        let at = base + (k / 3) * MIN;
        let answer = cp
            .call(
                "StartTransaction",
                json!({"connectorId": k + 1, "idTag": format!("+{k}"), "meterStart": k,
                       "timestamp": iso(at)}),
            )
            .await;
        expected.push((at, answer["transactionId"].as_i64().unwrap()));
    }
    expected.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.to_string().cmp(&b.1.to_string()))
    });
    let query = format!("from={}&to={}", iso(base), iso(base + 24 * H));
    let (code, _, _, text) = get_text(&server, &format!("/api/v1/transactions.csv?{query}")).await;
    assert_eq!(code, 200, "{text}");
    let rows = parse_csv(&text);
    assert_eq!(rows.len(), expected.len() + 1);
    let ids: Vec<i64> = rows[1..].iter().map(|r| r[0].parse().unwrap()).collect();
    let want: Vec<i64> = expected.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids, want, "every transaction once, in order");
    for row in &rows[1..] {
        assert!(row[3].starts_with("'+"), "guarded idTag: {row:?}");
        assert_eq!(row[4], "active");
    }
    let listed = walk(&server, &query, 1000).await;
    let listed: Vec<i64> = listed
        .iter()
        .map(|i| i["transaction_id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, want, "the list agrees");
    server.shutdown().await;
}

/// The same queries on a three-master Redis Cluster: the fleet index and the idTag indexes are
/// single keys in their own slots, the records and per-charge-point indexes spread over the
/// masters; the backfill works there too.
#[actix_web::test]
async fn transaction_queries_work_on_a_redis_cluster() {
    let seed = Utc::now().timestamp_nanos_opt().unwrap_or(1) as u64 | 1;
    eprintln!("fleet_transactions cluster seed: {seed}");
    let cluster = common::cluster::RedisCluster::start();
    let server = start_server(common::cluster::cluster_config(&cluster)).await;
    let mut rng = Rng(seed);
    let fleet = build_fleet(&server, &mut rng).await;
    let (raw, from, to) = (&fleet.raw, fleet.from, fleet.to);
    let range = format!("from={}&to={}", iso(from), iso(to));
    let mut all: Vec<&Txn> = fleet.txns.iter().collect();
    sort_index_order(&mut all);
    let items = walk(&server, &range, 7).await;
    check_items(seed, "cluster, all", &items, &all, raw);
    let (code, body) = spawn_request(
        server.http_addr,
        "PUT",
        "/api/v1/groups/east",
        Some(json!({"name": "East", "charge_points": ["CP-1", "CP-3"]})),
    )
    .await
    .unwrap();
    assert!(code == 200 || code == 201, "{body}");
    let east: Vec<&Txn> = all
        .iter()
        .copied()
        .filter(|t| t.cp == "CP-1" || t.cp == "CP-3")
        .collect();
    let items = walk(&server, &format!("{range}&group=east"), 4).await;
    check_items(seed, "cluster, group", &items, &east, raw);
    let (code, _, _, text) = get_text(&server, &format!("/api/v1/transactions.csv?{range}")).await;
    assert_eq!(code, 200, "{text}");
    assert_eq!(parse_csv(&text).len(), all.len() + 1);
    check_id_tag_energy(&server, seed, &all, raw, from, to).await;

    // Before the indexes existed: rebuilt from the per-charge-point ones on first use.
    for key in [
        "ocpp:txns",
        "ocpp:txns:backfilled",
        "ocpp:id-tag:taga:txns",
        "ocpp:id-tag:=sum(1+1):txns",
        "ocpp:id-tag:@cmd:txns",
        "ocpp:id-tag:-x,\"y\":txns",
        "ocpp:id-tag:tag%7bb%7d:txns",
    ] {
        cluster.cli(&["DEL", key]);
    }
    assert_eq!(cluster.cli(&["EXISTS", "ocpp:txns"]).trim(), "0");
    let items = walk(&server, &range, 1000).await;
    check_items(seed, "cluster, after the backfill", &items, &all, raw);
    check_id_tag_energy(&server, seed, &all, raw, from, to).await;
    server.shutdown().await;
}

/// An idTag's energy equals the charge point's roll-up energy when the idTag's transactions
/// are all the charge point metered (readings in order, the register idle between them): the
/// two use the same split at bucket boundaries.
#[actix_web::test]
async fn id_tag_energy_agrees_with_the_roll_ups() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-Z").await;
    cp.boot().await;
    let mut rng = Rng(0x05EE_D0F1_D7A6);
    let now = Utc::now().timestamp_millis();
    let midnight = now.div_euclid(D) * D - D;
    let mut register = 1000.0;
    let mut at = midnight - 5 * H + 7 * MIN;
    for _ in 0..3 {
        let start = cp
            .call(
                "StartTransaction",
                json!({"connectorId": 1, "idTag": "CARD-9", "meterStart": register as i64,
                       "timestamp": iso(at)}),
            )
            .await;
        let id = start["transactionId"].as_i64().unwrap();
        let end = at + rng.range(2 * H, 5 * H);
        let mut first = true;
        while at < end {
            // The first reading repeats the register where the last transaction left it: the
            // register is idle between transactions.
            if !first {
                register += rng.range(1, 3000) as f64;
            }
            first = false;
            let sampled =
                json!([{"value": format!("{register}"), "measurand": REGISTER, "unit": "Wh"}]);
            let payload = meter_values(1, Some(id), &iso(at), sampled);
            assert_eq!(cp.call("MeterValues", payload).await, json!({}));
            at += rng.range(5 * MIN, 40 * MIN);
        }
        cp.call(
            "StopTransaction",
            json!({"transactionId": id, "meterStop": register as i64, "timestamp": iso(at)}),
        )
        .await;
        at += rng.range(10 * MIN, 2 * H);
    }
    let range = format!("from={}&to={}", iso(midnight - 6 * H), iso(at + H));
    for period in ["hour", "day"] {
        let (code, rollups) = get(
            &server,
            &format!(
                "/api/v1/charge-points/CP-Z/aggregates?period={period}&{range}\
                 &measurand={REGISTER}&connector=1"
            ),
        )
        .await;
        assert_eq!(code, 200, "{rollups}");
        let (code, tag) = get(
            &server,
            &format!("/api/v1/id-tags/card-9/energy?period={period}&{range}"),
        )
        .await;
        assert_eq!(code, 200, "{tag}");
        let mut by_start: BTreeMap<String, f64> = BTreeMap::new();
        for b in rollups["buckets"].as_array().unwrap() {
            if b["phase"].is_null() {
                *by_start
                    .entry(b["start"].as_str().unwrap().to_owned())
                    .or_default() += b["energy_wh"].as_f64().unwrap();
            }
        }
        let mut total = 0.0;
        for b in tag["buckets"].as_array().unwrap() {
            let want = by_start
                .get(b["start"].as_str().unwrap())
                .copied()
                .unwrap_or(0.0);
            let got = b["energy_wh"].as_f64().unwrap();
            assert!(
                close(want, got),
                "{period} {}: {got} != roll-up {want}",
                b["start"]
            );
            total += got;
        }
        assert!(
            total > 0.0 && close(total, by_start.values().sum()),
            "{period}: {total}"
        );
    }
    server.shutdown().await;
}
