//! `GET /metrics`: the Prometheus text exposition parses, and its counters follow what really
//! happened on real sockets (a charge point's messages, a bad frame, a flush to the private
//! Redis, a Redis outage).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should stop the test loudly

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::*;
use ocpp_meter::RunningServer;
use serde_json::json;

/// One scrape: every sample keyed `name{label="value",...}` with labels sorted, plus the
/// declared metric families and their types.
struct Scrape {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
}

impl Scrape {
    /// The value of a series, `None` when absent.
    fn get(&self, series: &str) -> Option<f64> {
        self.samples.get(series).copied()
    }

    /// The value of a series that must be present.
    fn value(&self, series: &str) -> f64 {
        self.get(series)
            .unwrap_or_else(|| panic!("no series {series} in {:#?}", self.samples.keys()))
    }
}

/// Reads a `{a="x",b="y"}` label block (after the `{`); returns the labels and the rest.
fn parse_labels(text: &str) -> (Vec<(String, String)>, &str) {
    let mut labels = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(',');
        if let Some(after) = rest.strip_prefix('}') {
            return (labels, after);
        }
        let eq = rest.find('=').expect("label has '='");
        let key = rest[..eq].to_owned();
        assert!(
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad label name {key:?}"
        );
        let mut chars = rest[eq + 1..].char_indices();
        assert_eq!(
            chars.next().map(|(_, c)| c),
            Some('"'),
            "label value is quoted"
        );
        let mut value = String::new();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => panic!("dangling escape"),
                },
                '"' => {
                    end = Some(eq + 1 + i + 1);
                    break;
                }
                c => value.push(c),
            }
        }
        labels.push((key, value));
        rest = &rest[end.expect("label value is closed")..];
    }
}

/// A small parser of the Prometheus text format 0.0.4: `# HELP`/`# TYPE` lines and samples
/// `name{labels} value`. Panics on anything else, so a malformed exposition fails the test.
fn parse(text: &str) -> Scrape {
    let mut samples = BTreeMap::new();
    let mut types = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "unknown type in {line:?}"
                    );
                    types.insert(name.to_owned(), kind.to_owned());
                }
                (Some("HELP"), Some(_), Some(_)) => {}
                (Some("EOF"), None, None) => panic!("OpenMetrics EOF in Prometheus text"),
                _ => panic!("unexpected comment {line:?}"),
            }
            continue;
        }
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .expect("sample line has a value");
        let name = &line[..name_end];
        let (mut labels, rest) = match line[name_end..].strip_prefix('{') {
            Some(after) => parse_labels(after),
            None => (Vec::new(), &line[name_end..]),
        };
        let value: f64 = rest
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("bad value in {line:?}: {e}"));
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "sample {name} has no # TYPE line before it"
        );
        labels.sort();
        let key = if labels.is_empty() {
            name.to_owned()
        } else {
            let body: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", body.join(","))
        };
        assert!(
            samples.insert(key.clone(), value).is_none(),
            "duplicate series {key}"
        );
    }
    Scrape { samples, types }
}

/// GET /metrics: checks the status and content type, parses the body.
async fn scrape(server: &RunningServer) -> Scrape {
    let url = format!("http://{}/metrics", server.http_addr);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let mut response = client.get(&url).send().await.expect("http request");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "Prometheus text content type, got {content_type:?}"
    );
    let body = response.body().limit(16 << 20).await.expect("body");
    parse(std::str::from_utf8(&body).expect("UTF-8"))
}

/// Polls /metrics until `check` holds; returns the last scrape for the assertions.
async fn scrape_until(
    server: &RunningServer,
    what: &str,
    check: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = scrape(server).await;
        if check(&scrape) {
            return scrape;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: never true; last scrape {:#?}",
            scrape.samples
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[actix_web::test]
async fn counters_follow_a_session_a_bad_frame_and_a_flush() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;

    let first = scrape(&server).await;
    assert_eq!(first.value("ocpp_connected_charge_points"), 0.0);
    assert_eq!(first.value("samples_ingested_total"), 0.0);
    assert_eq!(first.types["flush_batch_samples"], "histogram");
    assert_eq!(first.types["redis_pipeline_duration_seconds"], "histogram");
    assert_eq!(first.types["buffered_samples"], "gauge");
    assert_eq!(first.value("alerts_raised_total{rule=\"high_power\"}"), 0.0);
    // Which instance this is, and the fleet families, every series listed from 0.
    let instance = format!(
        "ocpp_meter_instance_info{{instance=\"{}\"}}",
        server.fleet.id()
    );
    assert_eq!(first.value(&instance), 1.0);
    assert_eq!(first.types["ocpp_meter_instance_info"], "gauge");
    assert_eq!(first.value("fleet_peers"), 0.0);
    for (family, label, values) in [
        (
            "fleet_remote_calls_total",
            "result",
            &["sent", "timeout", "served"][..],
        ),
        (
            "fleet_takeovers_total",
            "direction",
            &["taken", "handed"][..],
        ),
        (
            "fleet_events_total",
            "result",
            &["published", "dropped", "received"][..],
        ),
    ] {
        for value in values {
            assert_eq!(
                first.value(&format!("{family}{{{label}=\"{value}\"}}")),
                0.0
            );
        }
    }
    assert_eq!(first.value("fleet_subscriptions_total"), 1.0);

    let mut cp = ChargePoint::connect(&server, "CP-MET").await;
    cp.boot().await;
    // Three readings; 60 kW is over the default power_max_w and raises high_power.
    let payload = meter_values(
        1,
        None,
        &now(),
        json!([
            {"value": "1234", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": "60", "measurand": "Power.Active.Import", "unit": "kW"},
            {"value": "230", "measurand": "Voltage", "unit": "V"},
        ]),
    );
    assert_eq!(cp.call("MeterValues", payload).await, json!({}));
    cp.send_text("this is not JSON").await;
    let bad = cp.recv().await;
    assert_eq!(bad[0], json!(4), "a bad frame gets a CALLERROR: {bad}");
    let bad_code = bad[2].as_str().expect("error code").to_owned();
    let unknown = cp.call_frame("NoSuchAction", json!({})).await;
    assert_eq!(unknown[2], json!("NotImplemented"));

    let live = scrape_until(&server, "the raise is counted", |s| {
        s.get("alerts_raised_total{rule=\"high_power\"}") == Some(1.0)
    })
    .await;
    assert_eq!(live.value("ocpp_connected_charge_points"), 1.0);
    assert_eq!(live.types["ocpp_messages_total"], "counter");
    assert_eq!(
        live.value("ocpp_messages_total{action=\"BootNotification\",result=\"CALLRESULT\"}"),
        1.0
    );
    assert_eq!(
        live.value("ocpp_messages_total{action=\"MeterValues\",result=\"CALLRESULT\"}"),
        1.0
    );
    assert_eq!(
        live.value(&format!(
            "ocpp_messages_total{{action=\"malformed\",result=\"{bad_code}\"}}"
        )),
        1.0
    );
    assert_eq!(
        live.value("ocpp_messages_total{action=\"unknown\",result=\"NotImplemented\"}"),
        1.0,
        "an invented action is not a label value"
    );
    assert!(
        live.samples.keys().all(|k| !k.contains("NoSuchAction")),
        "no series for an invented action"
    );
    assert_eq!(live.value("samples_ingested_total"), 3.0);
    // The one MeterValues was answered after its write-ahead log record was synced.
    assert_eq!(live.value("wal_records_total"), 1.0);
    assert_eq!(live.value("wal_commits_total"), 1.0);
    assert_eq!(live.value("wal_fsyncs_total"), 1.0);
    assert!(live.value("wal_bytes_written_total") > 20.0);
    assert!(live.value("wal_disk_bytes") > 20.0);
    assert_eq!(live.value("wal_segments"), 1.0);
    assert_eq!(live.value("wal_append_failures_total"), 0.0);
    assert_eq!(live.value("wal_records_replayed"), 0.0);
    assert_eq!(
        live.value("alerts_raised_total{rule=\"high_temperature\"}"),
        0.0
    );

    // Closing the session flushes its buffer: one batch of three samples reaches Redis.
    drop(cp);
    // The writer counts the stored samples a moment before it publishes its emptied queue, and
    // a scrape reads each atomic separately: wait for both.
    let flushed = scrape_until(&server, "the flush is stored", |s| {
        s.get("samples_stored_total") == Some(3.0)
            && s.get("writer_pending_samples") == Some(0.0)
            && s.get("ocpp_connected_charge_points") == Some(0.0)
    })
    .await;
    assert_eq!(flushed.value("flush_batch_samples_count"), 1.0);
    assert_eq!(flushed.value("flush_batch_samples_sum"), 3.0);
    assert_eq!(flushed.value("flush_batch_samples_bucket{le=\"2\"}"), 0.0);
    assert_eq!(flushed.value("flush_batch_samples_bucket{le=\"4\"}"), 1.0);
    assert_eq!(
        flushed.value("flush_batch_samples_bucket{le=\"+Inf\"}"),
        1.0
    );
    assert!(flushed.value("redis_pipeline_duration_seconds_count") >= 1.0);
    assert!(flushed.value("redis_pipeline_duration_seconds_sum") > 0.0);
    assert_eq!(flushed.value("writer_pending_samples"), 0.0);
    assert_eq!(flushed.value("buffered_samples"), 0.0);
    assert_eq!(
        flushed.value("samples_dropped_total{stage=\"writer\"}"),
        0.0
    );
    assert_eq!(
        flushed.value("redis_errors_total{component=\"writer\"}"),
        0.0
    );
    assert_eq!(flushed.value("redis_up"), 1.0);
    assert_eq!(flushed.value("sse_clients"), 0.0);
    // Every series belongs to a declared family and no family is declared twice.
    let families: HashSet<&String> = flushed.types.keys().collect();
    assert_eq!(families.len(), flushed.types.len());
    server.shutdown().await;
}

#[actix_web::test]
async fn redis_errors_are_counted_while_redis_is_down() {
    let mut redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "CP-MET-DOWN").await;
    cp.boot().await;
    scrape_until(&server, "the boot is written", |s| {
        s.get("redis_up") == Some(1.0)
    })
    .await;

    redis.stop();
    let payload = meter_values(
        1,
        None,
        &now(),
        json!([{"value": "5", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]),
    );
    assert_eq!(cp.call("MeterValues", payload).await, json!({}));
    drop(cp);
    // The end of the session reaches the writer in two parts: its record changes (statistics,
    // presence) straight from the session, its last samples through the buffer, which flushes
    // them only after the session has stopped. A failed pipeline of the first part alone already
    // counts an error, so waiting for any error raced the sample's batch. Wait for the sample to
    // be queued, then for two more failures: at most one pipeline is in flight when the sample
    // is seen queued, so the second one started after it and carried it.
    let errors = "redis_errors_total{component=\"writer\"}";
    let queued = scrape_until(&server, "the sample reaches the writer", |s| {
        s.get("writer_pending_samples") == Some(1.0)
    })
    .await;
    let before = queued.value(errors);
    // `redis_up` is part of the wait, not checked after it: a scrape reads it before the error
    // counter, each atomic on its own, so one scrape may see a failure counted and `redis_up`
    // not yet turned to 0.
    let down = scrape_until(
        &server,
        "the failed writes of the sample are counted",
        |s| s.get(errors).is_some_and(|v| v >= before + 2.0) && s.get("redis_up") == Some(0.0),
    )
    .await;
    assert_eq!(down.value("writer_pending_samples"), 1.0);
    assert_eq!(down.value("samples_stored_total"), 0.0);

    redis.start_again();
    scrape_until(&server, "the sample is written once Redis is back", |s| {
        s.get("samples_stored_total") == Some(1.0) && s.get("writer_pending_samples") == Some(0.0)
    })
    .await;
    server.shutdown().await;
}

#[actix_web::test]
async fn refused_charge_points_are_counted_as_auth_failures() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.ocpp.unknown_charge_points = ocpp_meter::config::UnknownChargePoints::Reject;
    let server = start_server(config).await;
    let before = scrape(&server).await;
    assert_eq!(before.value("charge_point_auth_failures_total"), 0.0);
    let url = format!("ws://{}/ocpp/CP-MET-UNKNOWN", server.ws_addr);
    for _ in 0..2 {
        assert_eq!(connect_with(&url, Some("ocpp1.6")).await.err(), Some(401));
    }
    let after = scrape(&server).await;
    assert_eq!(after.value("charge_point_auth_failures_total"), 2.0);
    assert_eq!(after.value("charge_point_auth_rate_limited_total"), 0.0);
    assert_eq!(after.value("ocpp_connected_charge_points"), 0.0);
    server.shutdown().await;
}

/// The process allocator is jemalloc (feature `jemalloc`, on by default; src/memory.rs) and its
/// figures are on /metrics: what the server holds lives in jemalloc's heap, not glibc's, and
/// what jemalloc maps covers what it hands out.
#[actix_web::test]
async fn the_allocators_bytes_are_reported() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let scraped = scrape(&server).await;
    assert_eq!(scraped.types["ocpp_memory_allocated_bytes"], "gauge");
    let allocated = scraped.value("ocpp_memory_allocated_bytes");
    let resident = scraped.value("ocpp_memory_resident_bytes");
    // A running server (actix, its pools, the read cache's tables) holds megabytes; a jemalloc
    // linked in but not serving the process's allocations would report almost nothing.
    assert!(allocated > 1_000_000.0, "allocated {allocated}");
    assert!(
        resident >= allocated,
        "resident {resident} < allocated {allocated}"
    );
    server.shutdown().await;
}

#[test]
fn the_parser_refuses_malformed_expositions() {
    let good = parse("# HELP a_total x\n# TYPE a_total counter\na_total{b=\"c\\\"d\"} 2\n");
    assert_eq!(good.value("a_total{b=\"c\"d\"}"), 2.0);
    for bad in [
        "a_total 1\n",
        "# TYPE a counter\na{b=c} 1\n",
        "# TYPE a counter\na one\n",
        "# TYPE a counter\na 1\na 2\n",
    ] {
        assert!(
            std::panic::catch_unwind(|| parse(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
}
