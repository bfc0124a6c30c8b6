//! The web dashboard (issue 6) in a real browser: headless Chromium driven over WebDriver
//! (chromedriver + fantoccini), the real server on ephemeral ports with a private redis-server,
//! and simulated charge points on real WebSockets. The tests only rely on the DOM contract the
//! dashboard implements (`data-*` attributes, ids and routes, written down in
//! `src/dashboard/CONTRACT.md`), not on its markup or styling.
//!
//! Waits poll the page with bounded timeouts; the only time asserted is the issue's "a threshold
//! breach shows an alert within 5 s". Chromium and chromedriver missing is a failure that says
//! how to install them (`apt-get install chromium chromium-driver`), never a skip.
//!
//! `DASHBOARD_SCREENSHOTS=1 cargo test --test browser` also writes `docs/dashboard-overview.png`,
//! `docs/dashboard-detail.png` and `docs/dashboard-fleet.png`, the screenshots the README shows;
//! normal runs leave the tree alone.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should stop the test loudly

mod common;
#[path = "browser/driver.rs"]
mod driver;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use driver::{Browser, DESKTOP, WAIT};
use ocpp_meter::RunningServer;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// An admin token long enough for `[admin] tokens` (at least 16 characters).
const TOKEN: &str = "dashboard-token-for-browser-tests-0123";

/// How long the page must have finished no request to count as settled.
const QUIET: Duration = Duration::from_millis(1000);

/// The bound between a MeterValues answered and its alert shown in the page.
const ALERT_SHOWN_WITHIN: Duration = Duration::from_secs(5);

/// The dashboard's address: `/` of the admin listener.
fn dashboard(server: &RunningServer) -> String {
    format!("http://{}/", server.http_addr)
}

/// RFC 3339 with milliseconds, `ago` before now: live charts keep a sliding window, so
/// readings carry the current time.
fn timestamp(ago: Duration) -> String {
    (chrono::Utc::now() - chrono::Duration::from_std(ago).unwrap())
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// One admin API request with an optional bearer token: status and JSON body (`Null` when
/// empty).
async fn api(
    server: &RunningServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("http://{}{path}", server.http_addr);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method, &url);
    if let Some(token) = token {
        request = request.insert_header(("Authorization", format!("Bearer {token}")));
    }
    let mut response = match body {
        Some(body) => request.send_json(&body).await,
        None => request.send().await,
    }
    .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let bytes = response.body().limit(16 << 20).await.expect("body");
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("{url}: non-JSON body {}", String::from_utf8_lossy(&bytes)))
    };
    (status, value)
}

/// A MeterValues of one total `Power.Active.Import` reading in kW, taken now.
async fn send_power(cp: &mut ChargePoint, kw: f64) {
    let payload = meter_values(
        1,
        None,
        &timestamp(Duration::ZERO),
        json!([{"value": format!("{kw}"), "measurand": "Power.Active.Import", "unit": "kW"}]),
    );
    assert_eq!(cp.call("MeterValues", payload).await, json!({}));
}

/// A MeterValues with what the detail page charts: power, current and voltage per phase and
/// the temperature, `ago` before now. `step` drives a plausible 3-phase 16 A session (a ramp
/// up, then small deterministic jitter) so the screenshot looks like a real charge.
async fn send_phases(cp: &mut ChargePoint, transaction: Option<i64>, ago: Duration, step: u32) {
    // A cheap deterministic jitter in [-0.5, 0.5): the same run draws the same picture.
    let jitter = |k: u32| f64::from((step * 7919 + k * 104_729) % 1000) / 1000.0 - 0.5;
    let ramp = (f64::from(step) / 4.0).min(1.0);
    let mut sampled = Vec::new();
    for (i, phase) in (0u32..).zip(["L1", "L2", "L3"]) {
        let amps = 6.0 + 10.0 * ramp + 0.8 * jitter(i);
        let volts = 230.0 + 1.2 * jitter(i + 3) + (f64::from(i) - 1.0) * 1.5;
        sampled.push(json!({"value": format!("{:.1}", amps * volts),
            "measurand": "Power.Active.Import", "phase": phase, "unit": "W"}));
        sampled.push(
            json!({"value": format!("{amps:.2}"), "measurand": "Current.Import",
            "phase": phase, "unit": "A"}),
        );
        sampled.push(
            json!({"value": format!("{volts:.1}"), "measurand": "Voltage",
            "phase": format!("{phase}-N"), "unit": "V"}),
        );
    }
    sampled.push(
        json!({"value": format!("{:.1}", 27.0 + f64::from(step) * 0.12 + 0.3 * jitter(9)),
        "measurand": "Temperature", "unit": "Celsius"}),
    );
    let payload = meter_values(1, transaction, &timestamp(ago), Value::Array(sampled));
    assert_eq!(cp.call("MeterValues", payload).await, json!({}));
}

/// A StartTransaction on connector 1, `ago` before now: its transaction id.
async fn start_transaction(
    cp: &mut ChargePoint,
    tag: &str,
    meter_start: i64,
    ago: Duration,
) -> i64 {
    let answer = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": tag, "meterStart": meter_start,
                "timestamp": timestamp(ago)}),
        )
        .await;
    answer["transactionId"].as_i64().expect("transaction id")
}

/// A StopTransaction, `ago` before now.
async fn stop_transaction(cp: &mut ChargePoint, transaction: i64, meter_stop: i64, ago: Duration) {
    cp.call(
        "StopTransaction",
        json!({"transactionId": transaction, "meterStop": meter_stop,
            "timestamp": timestamp(ago), "reason": "Local"}),
    )
    .await;
}

/// "Samples last minute" of the detail page, `None` until it shows a number.
async fn samples_last_minute(browser: &Browser) -> Option<u64> {
    browser
        .text("[data-cp-detail] [data-field=\"samples-last-minute\"]")
        .await
        .and_then(|n| n.trim().parse().ok())
}

/// Waits until the row of `transaction` in `#transactions` shows `state` and, when given,
/// `energy` (an active transaction's live energy depends on when the stats were last read).
async fn wait_transaction(browser: &Browser, transaction: i64, state: &str, energy: Option<&str>) {
    let row = format!("#transactions tr[data-transaction-id=\"{transaction}\"]");
    browser
        .wait_for(
            &format!("transaction {transaction}: {state}, {energy:?}"),
            WAIT,
            || async {
                let shown_state = browser.text(&format!("{row} [data-field=\"state\"]")).await;
                let shown_energy = browser
                    .text(&format!("{row} [data-field=\"energy\"]"))
                    .await;
                (shown_state.as_deref() == Some(state)
                    && energy.is_none_or(|e| shown_energy.as_deref() == Some(e)))
                .then_some(())
            },
        )
        .await;
}

/// A connector status report.
async fn send_status(cp: &mut ChargePoint, connector: u32, status: &str) {
    cp.call(
        "StatusNotification",
        json!({"connectorId": connector, "errorCode": "NoError", "status": status}),
    )
    .await;
}

/// Closes the charge point's WebSocket the way a charge point going away does.
async fn disconnect(mut cp: ChargePoint) {
    cp.send_message(Message::Close(None)).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), cp.close_code()).await;
}

/// Reads a power text such as `7.4 kW` (or `7400 W`, `0.0074 MW`) as kilowatts.
fn kilowatts(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))?;
    let number: f64 = text[..split].trim().parse().ok()?;
    match text[split..].trim() {
        "W" => Some(number / 1000.0),
        "kW" => Some(number),
        "MW" => Some(number * 1000.0),
        _ => None,
    }
}

/// `data-points` of a live chart, `None` while the chart (or the attribute) is missing.
async fn chart_points(browser: &Browser, chart: &str) -> Option<u64> {
    browser
        .attr(&format!("[data-chart=\"{chart}\"]"), "data-points")
        .await
        .and_then(|n| n.trim().parse().ok())
}

/// Waits until the page's live event stream is open (`data-live-state="connected"`).
async fn wait_live(browser: &Browser, state: &str, timeout: Duration) {
    browser
        .wait_for(&format!("data-live-state=\"{state}\""), timeout, || async {
            (browser
                .attr("[data-live-state]", "data-live-state")
                .await
                .as_deref()
                == Some(state))
            .then_some(())
        })
        .await;
}

/// The text of a cell of the overview row of `id`.
async fn fleet_cell(browser: &Browser, id: &str, field: &str) -> Option<String> {
    browser
        .text(&format!(
            "#fleet tr[data-cp-id=\"{id}\"] [data-field=\"{field}\"]"
        ))
        .await
}

/// Waits until the overview cell `field` of `id` reads `expected`.
async fn wait_cell(browser: &Browser, id: &str, field: &str, expected: &str) {
    browser
        .wait_for(
            &format!("#fleet row {id}: {field} = {expected:?}"),
            WAIT,
            || async {
                (fleet_cell(browser, id, field).await.as_deref() == Some(expected)).then_some(())
            },
        )
        .await;
}

/// Writes a screenshot to `docs/<name>` when `DASHBOARD_SCREENSHOTS=1`, so ordinary test runs
/// never dirty the tree.
async fn save_screenshot(browser: &Browser, name: &str) {
    if std::env::var("DASHBOARD_SCREENSHOTS").as_deref() != Ok("1") {
        return;
    }
    // Charts redraw a moment after their data changes; let the last draw land (a picture, not
    // an assertion, so a short pause is fine here).
    browser
        .js("document.activeElement && document.activeElement.blur();
             return new Promise(resolve => setTimeout(() => resolve(null), 500))")
        .await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(name);
    std::fs::write(&path, browser.screenshot().await)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Opens the detail page of `id` from the overview, as a user does: the row's link (or the row).
async fn open_detail_from_overview(browser: &Browser, id: &str) {
    let link = format!("#fleet tr[data-cp-id=\"{id}\"] a[href=\"#/cp/{id}\"]");
    if browser.visible(&link).await {
        browser.click(&link).await;
    } else {
        browser
            .click(&format!("#fleet tr[data-cp-id=\"{id}\"]"))
            .await;
    }
    browser
        .wait_for(&format!("the detail page of {id}"), WAIT, || async {
            browser
                .visible(&format!("[data-cp-detail=\"{id}\"]"))
                .await
                .then_some(())
        })
        .await;
}

#[actix_web::test]
async fn the_overview_shows_charge_points_coming_and_going_and_fits_a_phone() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let browser = Browser::start(false).await;
    browser.open(&dashboard(&server)).await;

    // No charge point yet: the empty state says how to connect one.
    let empty = browser
        .wait_for("the empty state", WAIT, || async {
            browser.text("[data-empty-state]").await
        })
        .await;
    assert!(
        empty.contains("/ocpp/") && empty.contains("ocpp1.6"),
        "the empty state should say how to connect a charge point: {empty:?}"
    );
    wait_live(&browser, "connected", WAIT).await;

    // Two charge points connect while the page is open: they appear without a reload.
    let mut alpha = ChargePoint::connect(&server, "OV-ALPHA").await;
    alpha.boot().await;
    send_status(&mut alpha, 1, "Charging").await;
    send_power(&mut alpha, 7.4).await;
    let mut beta = ChargePoint::connect(&server, "OV-BETA").await;
    beta.boot().await;
    send_status(&mut beta, 1, "Available").await;

    wait_cell(&browser, "OV-ALPHA", "online", "online").await;
    wait_cell(&browser, "OV-BETA", "online", "online").await;
    // Which server instance holds each session.
    wait_cell(&browser, "OV-ALPHA", "instance", server.fleet.id()).await;
    browser
        .wait_for("OV-ALPHA drawing 7.4 kW", WAIT, || async {
            let power = fleet_cell(&browser, "OV-ALPHA", "power").await?;
            kilowatts(&power)
                .is_some_and(|kw| (kw - 7.4).abs() < 0.05)
                .then_some(())
        })
        .await;
    browser
        .wait_for("OV-ALPHA's connector status", WAIT, || async {
            fleet_cell(&browser, "OV-ALPHA", "connectors")
                .await?
                .contains("Charging")
                .then_some(())
        })
        .await;
    assert_eq!(
        fleet_cell(&browser, "OV-ALPHA", "alerts").await.as_deref(),
        Some("0"),
        "no active alert"
    );
    assert!(
        !fleet_cell(&browser, "OV-ALPHA", "last-seen")
            .await
            .unwrap_or_default()
            .is_empty(),
        "last seen is shown"
    );
    assert!(
        !browser.visible("[data-empty-state]").await,
        "the empty state is gone once a charge point is known"
    );

    // The search box filters rows by id.
    browser.type_into("input#fleet-search", "BETA").await;
    browser
        .wait_for("the search to keep only OV-BETA", WAIT, || async {
            (!browser.visible("#fleet tr[data-cp-id=\"OV-ALPHA\"]").await
                && browser.visible("#fleet tr[data-cp-id=\"OV-BETA\"]").await)
                .then_some(())
        })
        .await;
    browser.type_into("input#fleet-search", "").await;
    browser
        .wait_for("both rows back with the search cleared", WAIT, || async {
            (browser.visible("#fleet tr[data-cp-id=\"OV-ALPHA\"]").await
                && browser.visible("#fleet tr[data-cp-id=\"OV-BETA\"]").await)
                .then_some(())
        })
        .await;

    // A charge point that disconnects goes offline in place.
    disconnect(alpha).await;
    wait_cell(&browser, "OV-ALPHA", "online", "offline").await;
    assert_eq!(
        fleet_cell(&browser, "OV-BETA", "online").await.as_deref(),
        Some("online")
    );
    let extra = screenshot_fleet(&server, &browser).await;

    // A 390 px phone screen: the page itself never scrolls sideways (tables may, inside
    // their own container).
    browser.set_size(390, 844).await;
    let width = browser
        .wait_for("a 390 px viewport", WAIT, || async {
            let width = browser.js("return window.innerWidth").await.as_u64()?;
            (width <= 390).then_some(width)
        })
        .await;
    assert_eq!(width, 390, "the viewport is as narrow as a phone");
    browser
        .wait_for(
            "no horizontal overflow at 390 px",
            Duration::from_secs(5),
            || async {
                let scroll = browser
                    .js("return document.documentElement.scrollWidth")
                    .await
                    .as_u64()?;
                (scroll <= 390).then_some(())
            },
        )
        .await;
    assert!(
        browser.visible("#fleet tr[data-cp-id=\"OV-BETA\"]").await,
        "the fleet is still shown on a phone"
    );
    browser.set_size(DESKTOP.0, DESKTOP.1).await;

    browser.assert_no_errors().await;
    browser.close().await;
    drop(beta);
    drop(extra);
}

/// With `DASHBOARD_SCREENSHOTS=1`: a few more charge points (one charging fast, one over the
/// power threshold) so the README's overview shows a fleet, then the screenshot. Returns their
/// connections, which must stay open until the test ends.
async fn screenshot_fleet(server: &RunningServer, browser: &Browser) -> Vec<ChargePoint> {
    if std::env::var("DASHBOARD_SCREENSHOTS").as_deref() != Ok("1") {
        return Vec::new();
    }
    let mut fleet = Vec::new();
    for (id, kw, status) in [
        ("DEPOT-01", 22.0, "Charging"),
        ("DEPOT-02", 0.0, "Available"),
        ("HPC-01", 61.5, "Charging"),
    ] {
        let mut cp = ChargePoint::connect(server, id).await;
        cp.boot().await;
        send_status(&mut cp, 1, status).await;
        if kw > 0.0 {
            send_power(&mut cp, kw).await;
        }
        wait_cell(browser, id, "online", "online").await;
        assert!(
            browser
                .visible(&format!("#fleet tr[data-cp-id=\"{id}\"]"))
                .await
        );
        fleet.push(cp);
    }
    wait_cell(browser, "HPC-01", "alerts", "1").await;
    save_screenshot(browser, "dashboard-overview.png").await;
    fleet
}

#[actix_web::test]
async fn the_detail_page_charts_new_meter_values_live() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "DET-1").await;
    cp.boot().await;
    // A transaction started and stopped before the page opens, with no reading naming it: only
    // the charge point's transaction list can show it.
    let earlier = start_transaction(&mut cp, "TAG-EARLY", 5000, Duration::from_secs(300)).await;
    stop_transaction(&mut cp, earlier, 6250, Duration::from_secs(240)).await;
    send_status(&mut cp, 1, "Charging").await;
    let start = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "TAG-DET", "meterStart": 12000,
                "timestamp": timestamp(Duration::from_secs(120))}),
        )
        .await;
    let transaction = start["transactionId"].as_i64();
    send_phases(&mut cp, transaction, Duration::from_secs(90), 0).await;

    let browser = Browser::start(false).await;
    browser.open(&dashboard(&server)).await;
    wait_cell(&browser, "DET-1", "online", "online").await;
    open_detail_from_overview(&browser, "DET-1").await;
    wait_live(&browser, "connected", WAIT).await;
    browser.wait_network_idle(QUIET).await;
    wait_transaction(&browser, earlier, "stopped", Some("1.25 kWh")).await;
    let before = browser
        .wait_for("the live power chart", WAIT, || async {
            chart_points(&browser, "live-power").await
        })
        .await;

    // One MeterValues while the page is open: the live power chart gets new points.
    send_phases(&mut cp, transaction, Duration::from_secs(60), 1).await;
    let after = browser
        .wait_for("new points in the live power chart", WAIT, || async {
            chart_points(&browser, "live-power")
                .await
                .filter(|&n| n > before)
        })
        .await;

    // A minute of readings: every live chart receives them.
    for step in 2..=30u32 {
        let ago = Duration::from_secs(u64::from(60 - step * 2));
        send_phases(&mut cp, transaction, ago, step).await;
    }
    browser
        .wait_for(
            "the rest of the readings in the live power chart",
            WAIT,
            || async {
                chart_points(&browser, "live-power")
                    .await
                    .filter(|&n| n > after)
            },
        )
        .await;
    for chart in ["live-current", "live-voltage", "live-temperature"] {
        browser
            .wait_for(&format!("points in {chart}"), WAIT, || async {
                chart_points(&browser, chart).await.filter(|&n| n > 0)
            })
            .await;
    }

    // "Samples last minute" follows the readings while they keep arriving (one every 400 ms,
    // 10 samples each, as a busy charge point sends them), not only once they stop.
    browser.wait_network_idle(QUIET).await;
    let rate_before = browser
        .wait_for("samples last minute", WAIT, || async {
            samples_last_minute(&browser).await
        })
        .await;
    let mut rate_now = rate_before;
    for step in 31..=80u32 {
        send_phases(&mut cp, transaction, Duration::ZERO, step).await;
        rate_now = samples_last_minute(&browser).await.unwrap_or(rate_now);
        if rate_now >= rate_before + 150 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(
        rate_now >= rate_before + 150,
        "samples last minute went from {rate_before} to only {rate_now} while readings arrived\n{}",
        browser.describe().await
    );

    // Transactions come and go live: the open one stops with its energy, a new one (no
    // reading names it yet) appears on its status change, and the newest start is listed first.
    let transaction = transaction.expect("transaction id");
    stop_transaction(&mut cp, transaction, 19400, Duration::ZERO).await;
    send_status(&mut cp, 1, "Finishing").await;
    wait_transaction(&browser, transaction, "stopped", Some("7.40 kWh")).await;
    let newest = start_transaction(&mut cp, "TAG-NEW", 19400, Duration::ZERO).await;
    send_status(&mut cp, 1, "Charging").await;
    wait_transaction(&browser, newest, "active", None).await;
    let order = browser
        .js(
            "return Array.from(document.querySelectorAll('#transactions tbody tr'))
                 .map(tr => Number(tr.dataset.transactionId))",
        )
        .await;
    assert_eq!(
        order,
        json!([newest, transaction, earlier]),
        "newest start first"
    );

    // The rest of the page is there: history with its range picker, energy, transactions,
    // alert history.
    let ranges = browser
        .js(
            "return Array.from(document.querySelectorAll('select#history-range option'))
                 .map(o => o.value + ' ' + o.textContent)",
        )
        .await;
    for range in ["1h", "6h", "24h", "7d"] {
        assert!(
            ranges.as_array().is_some_and(|options| options
                .iter()
                .any(|o| o.as_str().is_some_and(|o| o.contains(range)))),
            "select#history-range offers {range}: {ranges}"
        );
    }
    for selector in [
        "[data-chart=\"history\"]",
        "[data-chart=\"energy-hourly\"]",
        "[data-chart=\"energy-daily\"]",
        "#transactions",
        "#cp-alerts",
    ] {
        let present = browser
            .js_with(
                "return !!document.querySelector(arguments[0])",
                vec![json!(selector)],
            )
            .await;
        assert_eq!(present, json!(true), "the detail page has {selector}");
    }
    save_screenshot(&browser, "dashboard-detail.png").await;

    browser.assert_no_errors().await;
    browser.close().await;
    drop(cp);
}

#[actix_web::test]
async fn a_threshold_breach_shows_an_alert_within_5_s_and_acknowledging_it_updates_the_api() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let mut cp = ChargePoint::connect(&server, "ALERT-1").await;
    cp.boot().await;
    send_power(&mut cp, 11.0).await;

    let browser = Browser::start(false).await;
    browser
        .open(&format!("{}#/alerts", dashboard(&server)))
        .await;
    wait_live(&browser, "connected", WAIT).await;
    browser
        .wait_for("the alerts page", WAIT, || async {
            browser.visible("select#alert-state").await.then_some(())
        })
        .await;
    // Past the re-read that follows the stream opening: the alert must come live.
    browser.wait_network_idle(QUIET).await;

    // 60 kW against the default power_max_w of 50 kW.
    send_power(&mut cp, 60.0).await;
    let answered = Instant::now();
    // The alert's id comes from the API (polled until it is raised); the row in the page is
    // looked up by that id, so the page must show this very alert.
    let alert_id: std::cell::RefCell<Option<String>> = Default::default();
    let (id, shown_after) = browser
        .wait_for("the high_power alert row, active", WAIT, || async {
            let known = alert_id.borrow().clone();
            let id = match known {
                Some(id) => id,
                None => {
                    let (_, body) = api(
                        &server,
                        "GET",
                        "/api/v1/alerts?charge_point=ALERT-1&state=active",
                        None,
                        None,
                    )
                    .await;
                    let id = body["alerts"]
                        .as_array()?
                        .iter()
                        .find(|a| a["rule"] == "high_power")?["id"]
                        .as_str()?
                        .to_owned();
                    *alert_id.borrow_mut() = Some(id.clone());
                    id
                }
            };
            let state = browser
                .text(&format!(
                    "tr[data-alert-id=\"{id}\"] [data-field=\"state\"]"
                ))
                .await;
            (state.as_deref() == Some("active")).then(|| (id, answered.elapsed()))
        })
        .await;
    assert!(
        shown_after <= ALERT_SHOWN_WITHIN,
        "the alert took {shown_after:?} to show, more than {ALERT_SHOWN_WITHIN:?}"
    );
    let row = format!("tr[data-alert-id=\"{id}\"]");
    assert_eq!(
        browser
            .text(&format!("{row} [data-field=\"acknowledged\"]"))
            .await
            .as_deref(),
        Some("no")
    );

    // Acknowledge it in the page: the API has acknowledged_at, the row says so.
    browser
        .click(&format!("{row} button[data-action=\"ack\"]"))
        .await;
    browser
        .wait_for("acknowledged_at in GET /api/v1/alerts", WAIT, || async {
            let (_, body) = api(&server, "GET", "/api/v1/alerts", None, None).await;
            body["alerts"]
                .as_array()?
                .iter()
                .find(|a| a["id"] == json!(id))?["acknowledged_at"]
                .as_str()
                .map(str::to_owned)
        })
        .await;
    browser
        .wait_for("the row to say acknowledged", WAIT, || async {
            (browser
                .text(&format!("{row} [data-field=\"acknowledged\"]"))
                .await
                .as_deref()
                == Some("yes")
                && !browser
                    .visible(&format!("{row} button[data-action=\"ack\"]"))
                    .await)
                .then_some(())
        })
        .await;

    // The overview counts it, and the detail page lists it in its alert history.
    browser.click("a[href=\"#/\"]").await;
    wait_cell(&browser, "ALERT-1", "alerts", "1").await;
    open_detail_from_overview(&browser, "ALERT-1").await;
    browser
        .wait_for("the alert in #cp-alerts", WAIT, || async {
            browser
                .visible(&format!("#cp-alerts {row}"))
                .await
                .then_some(())
        })
        .await;

    // Back on the alerts page: the filters, then the alert clearing live.
    browser.click("a[href=\"#/alerts\"]").await;
    let shown = |visible: bool, what: &'static str| {
        let browser = &browser;
        let row = row.clone();
        async move {
            browser
                .wait_for(what, WAIT, || async {
                    (browser.visible(&row).await == visible).then_some(())
                })
                .await;
        }
    };
    shown(true, "the alert on the alerts page").await;
    browser.select("select#alert-state", "cleared").await;
    shown(false, "the active alert filtered out by state=cleared").await;
    browser.select("select#alert-state", "all").await;
    shown(true, "the alert back with state=all").await;
    browser.type_into("input#alert-cp", "NO-SUCH-CP").await;
    shown(false, "the alert filtered out by charge point").await;
    browser.type_into("input#alert-cp", "ALERT-1").await;
    shown(true, "the alert back with its charge point").await;
    browser.wait_network_idle(QUIET).await;
    // 10 kW is below the threshold minus the hysteresis: the alert clears, live.
    send_power(&mut cp, 10.0).await;
    browser
        .wait_for("the row to say cleared", WAIT, || async {
            (browser
                .text(&format!("{row} [data-field=\"state\"]"))
                .await
                .as_deref()
                == Some("cleared"))
            .then_some(())
        })
        .await;

    browser.assert_no_errors().await;
    browser.close().await;
    drop(cp);
}

#[actix_web::test]
async fn thresholds_edited_in_the_page_change_the_api() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let (status, global) = api(&server, "GET", "/api/v1/thresholds", None, None).await;
    assert_eq!(status, 200, "{global}");
    let fields: BTreeSet<String> = global.as_object().unwrap().keys().cloned().collect();

    let browser = Browser::start(false).await;
    browser
        .open(&format!("{}#/thresholds", dashboard(&server)))
        .await;
    let power_input = "form#thresholds-global input[name=\"power_max_w\"]";
    browser
        .wait_for(
            "the global thresholds loaded into the form",
            WAIT,
            || async {
                let value = browser
                    .js_with(
                        "const el = document.querySelector(arguments[0]);
                     return el ? el.value : null;",
                        vec![json!(power_input)],
                    )
                    .await;
                let value: f64 = value.as_str()?.trim().parse().ok()?;
                (Some(value) == global["power_max_w"].as_f64()).then_some(())
            },
        )
        .await;
    let inputs: BTreeSet<String> = serde_json::from_value(
        browser
            .js(
                "return Array.from(document.querySelectorAll('form#thresholds-global input[name]'))
                     .map(i => i.name)",
            )
            .await,
    )
    .unwrap();
    assert_eq!(
        inputs, fields,
        "one input per field of GET /api/v1/thresholds"
    );

    // Global: edit and save.
    browser.type_into(power_input, "42000").await;
    browser
        .click("button[data-action=\"save-thresholds\"]")
        .await;
    browser
        .wait_for("the save status to say saved", WAIT, || async {
            (browser.text("[data-save-status]").await.as_deref() == Some("saved")).then_some(())
        })
        .await;
    let (_, saved) = api(&server, "GET", "/api/v1/thresholds", None, None).await;
    let mut expected = global.clone();
    expected["power_max_w"] = json!(42000.0);
    assert_eq!(saved, expected, "only power_max_w changed");

    // Per charge point: load (the global document is in force), override, then delete.
    browser.type_into("input#thresholds-cp", "TH-1").await;
    browser
        .click("button[data-action=\"load-cp-thresholds\"]")
        .await;
    let cp_power = "form#thresholds-cp-form input[name=\"power_max_w\"]";
    browser
        .wait_for("TH-1's thresholds in the form", WAIT, || async {
            let value = browser
                .js_with(
                    "const el = document.querySelector(arguments[0]);
                     return el ? el.value : null;",
                    vec![json!(cp_power)],
                )
                .await;
            let value: f64 = value.as_str()?.trim().parse().ok()?;
            (value == 42000.0).then_some(())
        })
        .await;
    browser.type_into(cp_power, "11000").await;
    browser
        .click("button[data-action=\"save-cp-thresholds\"]")
        .await;
    browser
        .wait_for("TH-1's override in the API", WAIT, || async {
            let (_, body) = api(
                &server,
                "GET",
                "/api/v1/charge-points/TH-1/thresholds",
                None,
                None,
            )
            .await;
            (body["source"] == "charge_point" && body["power_max_w"] == json!(11000.0))
                .then_some(())
        })
        .await;
    browser
        .click("button[data-action=\"delete-cp-thresholds\"]")
        .await;
    // A confirmation dialog, if the page asks for one, is answered yes.
    let _ = browser.client.accept_alert().await;
    browser
        .wait_for("TH-1's override removed", WAIT, || async {
            let (_, body) = api(
                &server,
                "GET",
                "/api/v1/charge-points/TH-1/thresholds",
                None,
                None,
            )
            .await;
            (body["source"] == "global").then_some(())
        })
        .await;
    let (_, after) = api(&server, "GET", "/api/v1/thresholds", None, None).await;
    assert_eq!(after, expected, "the global document kept its edit");

    browser.assert_no_errors().await;
    browser.close().await;
}

#[actix_web::test]
async fn with_admin_tokens_the_page_asks_for_one_and_keeps_it_out_of_urls() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.admin.tokens = vec![TOKEN.to_owned()];
    let server = start_server(config).await;
    let mut cp = ChargePoint::connect(&server, "TOK-1").await;
    cp.boot().await;

    let browser = Browser::start(true).await;
    browser.open(&dashboard(&server)).await;
    browser
        .wait_for("form#token-form", WAIT, || async {
            browser.visible("form#token-form").await.then_some(())
        })
        .await;
    let mut requests = browser.requests().await;
    browser
        .type_into("form#token-form input[name=\"token\"]", TOKEN)
        .await;
    browser
        .click(
            "form#token-form button[type=\"submit\"], form#token-form input[type=\"submit\"], \
             form#token-form button:not([type])",
        )
        .await;
    wait_cell(&browser, "TOK-1", "online", "online").await;
    wait_live(&browser, "connected", WAIT).await;
    // The live stream really carries events with the token: a new reading shows up.
    send_power(&mut cp, 3.3).await;
    browser
        .wait_for("TOK-1 drawing 3.3 kW", WAIT, || async {
            let power = fleet_cell(&browser, "TOK-1", "power").await?;
            kilowatts(&power)
                .is_some_and(|kw| (kw - 3.3).abs() < 0.05)
                .then_some(())
        })
        .await;

    let url = browser.client.current_url().await.expect("current url");
    assert!(
        !url.as_str().contains(TOKEN),
        "the token is in the URL: {url}"
    );
    assert_eq!(
        browser
            .js("return sessionStorage.getItem('ocpp-meter-token')")
            .await,
        json!(TOKEN),
        "the token is kept in sessionStorage"
    );
    let after_submit = browser.requests().await;
    assert!(
        after_submit.iter().any(|(url, _)| url.contains("/api/")),
        "the page called the API after the token was entered: {after_submit:?}"
    );
    for (url, headers) in &after_submit {
        if !url.contains("/api/") {
            continue;
        }
        let authorization = headers
            .as_object()
            .and_then(|h| {
                h.iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            })
            .and_then(|(_, value)| value.as_str());
        assert_eq!(
            authorization,
            Some(format!("Bearer {TOKEN}").as_str()),
            "{url} was requested without the token"
        );
    }
    requests.extend(after_submit);
    let resources = browser
        .js(
            "return performance.getEntriesByType('resource').map(e => e.name)
                 .concat([location.href, document.referrer])",
        )
        .await;
    for url in requests.iter().map(|(url, _)| url.as_str()).chain(
        resources
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str),
    ) {
        assert!(
            !url.contains(TOKEN),
            "the token appeared in a request URL: {url}"
        );
    }

    browser.assert_no_errors().await;
    browser.close().await;
    drop(cp);
}

#[actix_web::test]
async fn live_updates_resume_after_a_server_restart_without_a_reload() {
    let redis = RedisServer::start();
    let config = test_config(&redis);
    let server = start_server(config.clone()).await;
    let (ws_addr, http_addr) = (server.ws_addr, server.http_addr);
    let mut cp = ChargePoint::connect(&server, "RS-1").await;
    cp.boot().await;
    send_power(&mut cp, 5.0).await;

    let browser = Browser::start(false).await;
    browser
        .open(&format!("{}#/cp/RS-1", dashboard(&server)))
        .await;
    browser
        .wait_for("the detail page of RS-1", WAIT, || async {
            browser
                .visible("[data-cp-detail=\"RS-1\"]")
                .await
                .then_some(())
        })
        .await;
    wait_live(&browser, "connected", WAIT).await;
    // A marker on the window: it survives only if the page is never reloaded.
    browser
        .js("window.__sameDocument = 'before the restart'; return null")
        .await;

    disconnect(cp).await;
    let report = server.shutdown().await;
    assert!(report.drained);
    wait_live(&browser, "reconnecting", WAIT).await;

    // The same ports again, the same Redis.
    let mut again = config.clone();
    again.server.ws_addr = ws_addr.to_string();
    again.server.http_addr = http_addr.to_string();
    let server = start_server(again).await;
    wait_live(&browser, "connected", Duration::from_secs(30)).await;
    browser.wait_network_idle(QUIET).await;

    let mut cp = ChargePoint::connect(&server, "RS-1").await;
    cp.boot().await;
    // The page re-reads recent readings from the API after a reconnection; past that (the
    // idle wait above) new readings can only come through the reopened event stream. Two of
    // them, in case a late re-read slipped through the idle wait.
    for kw in [6.0, 7.0] {
        let before = chart_points(&browser, "live-power").await.unwrap_or(0);
        send_power(&mut cp, kw).await;
        browser
            .wait_for(
                &format!("the {kw} kW reading after the restart in the live power chart"),
                WAIT,
                || async {
                    chart_points(&browser, "live-power")
                        .await
                        .filter(|&n| n > before)
                },
            )
            .await;
    }
    assert_eq!(
        browser.js("return window.__sameDocument").await,
        json!("before the restart"),
        "the page was reloaded"
    );

    browser.assert_no_errors().await;
    browser.close().await;
    drop(cp);
}

/// An `Energy.Active.Import.Register` reading in Wh on connector 1, `ago` before now.
async fn send_register(cp: &mut ChargePoint, wh: f64, ago: Duration) {
    let payload = meter_values(
        1,
        None,
        &timestamp(ago),
        json!([{"value": format!("{wh}"), "measurand": "Energy.Active.Import.Register",
            "unit": "Wh"}]),
    );
    assert_eq!(cp.call("MeterValues", payload).await, json!({}));
}

/// Energy as the dashboard shows it (`format.js`): kWh, two decimals below 100 kWh, one above.
fn kwh_text(wh: f64) -> String {
    let kwh = wh / 1000.0;
    if kwh.abs() >= 100.0 {
        format!("{kwh:.1} kWh")
    } else {
        format!("{kwh:.2} kWh")
    }
}

/// Numbers of the page's figures are written from JavaScript doubles, the API's from Rust's:
/// equal up to the rounding of a sum taken in another order.
fn same_wh(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

/// The `data-*` attributes of the first element matching `selector`, as a JSON object
/// (`dataset`), read in one go so they belong to the same render.
async fn dataset(browser: &Browser, selector: &str) -> Value {
    browser
        .js_with(
            "const el = document.querySelector(arguments[0]);
             return el ? Object.assign({}, el.dataset) : null;",
            vec![json!(selector)],
        )
        .await
}

/// Waits until the fleet page shows `group` ("" for the whole fleet) completely loaded.
async fn wait_fleet_page(browser: &Browser, group: &str) {
    browser
        .wait_for(
            &format!("the fleet page of group {group:?}"),
            WAIT,
            || async {
                let root = dataset(browser, "[data-fleet]").await;
                (root["state"] == "ready" && root["group"] == group).then_some(())
            },
        )
        .await;
}

/// The query of a URL as pairs, percent-decoded (`+` as a space, as URLSearchParams writes).
fn query_pairs(url: &str) -> Vec<(String, String)> {
    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                    out.push(u8::from_str_radix(hex, 16).unwrap());
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).unwrap()
    }
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Checks the fleet page, as it shows `group`, against the API: both energy charts (range,
/// bucket count, total), the top table (order, values, formatted text, links) and the CSV
/// link's filters. Returns the hourly chart's total.
async fn check_fleet_page(server: &RunningServer, browser: &Browser, group: &str) -> f64 {
    let group_param = if group.is_empty() {
        String::new()
    } else {
        format!("&group={group}")
    };
    let mut hourly_total = 0.0;
    for (chart, period, buckets, bucket_secs) in [
        ("fleet-energy-hourly", "hour", 48, 3600),
        ("fleet-energy-daily", "day", 30, 86_400),
    ] {
        let shown = dataset(browser, &format!("[data-chart=\"{chart}\"]")).await;
        assert_eq!(shown["group"], group, "{chart} shows the group: {shown}");
        let (from, to) = (
            shown["from"].as_str().unwrap().to_owned(),
            shown["to"].as_str().unwrap().to_owned(),
        );
        // The contract's ranges: whole UTC hours (days), the current one last.
        let from_t = chrono::DateTime::parse_from_rfc3339(&from).unwrap();
        let to_t = chrono::DateTime::parse_from_rfc3339(&to).unwrap();
        assert_eq!(
            (to_t - from_t).num_seconds(),
            buckets * bucket_secs,
            "{chart}: {shown}"
        );
        assert_eq!(to_t.timestamp() % bucket_secs, 0, "{chart}: {shown}");
        // (A page loaded just before the hour turned may be up to its minute's refresh late.)
        let ahead = to_t.timestamp() - chrono::Utc::now().timestamp();
        assert!(
            ahead > -120 && ahead <= bucket_secs,
            "{chart} ends with the current {period}: {shown}"
        );
        let (status, answer) = api(
            server,
            "GET",
            &format!("/api/v1/fleet/energy?period={period}&from={from}&to={to}{group_param}"),
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        let api_buckets = answer["buckets"].as_array().unwrap();
        let api_total: f64 = api_buckets
            .iter()
            .map(|b| b["energy_wh"].as_f64().unwrap())
            .sum();
        assert_eq!(
            shown["buckets"],
            json!(api_buckets.len().to_string()),
            "{chart}: bucket count as the API's: {shown}"
        );
        assert_eq!(api_buckets.len() as i64, buckets, "{answer}");
        assert_eq!(
            shown["points"],
            json!(buckets.to_string()),
            "{chart} draws every bucket: {shown}"
        );
        let page_total: f64 = shown["totalWh"].as_str().unwrap().parse().unwrap();
        assert!(
            same_wh(page_total, api_total),
            "{chart}: the page shows {page_total} Wh, the API sums {api_total} Wh\n{answer}"
        );
        if period == "hour" {
            hourly_total = api_total;
        }
    }

    // The top 10 over the daily chart's 30 days.
    let top = dataset(browser, "table#fleet-top").await;
    assert_eq!(top["group"], group, "{top}");
    let daily = dataset(browser, "[data-chart=\"fleet-energy-daily\"]").await;
    assert_eq!(
        (&top["from"], &top["to"]),
        (&daily["from"], &daily["to"]),
        "{top}"
    );
    let (status, answer) = api(
        server,
        "GET",
        &format!(
            "/api/v1/fleet/top?metric=energy_wh&from={}&to={}&limit=10{group_param}",
            top["from"].as_str().unwrap(),
            top["to"].as_str().unwrap()
        ),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let rows = browser
        .js(
            "return Array.from(document.querySelectorAll('table#fleet-top tbody tr[data-cp-id]'))
                 .map(tr => {
                   const energy = tr.querySelector('[data-field=\"energy\"]');
                   const id = tr.dataset.cpId;
                   const link = tr.querySelector('a[href=\"#/cp/' + encodeURIComponent(id) + '\"]');
                   return [id, Number(energy.dataset.wh), energy.textContent.trim(), !!link];
                 })",
        )
        .await;
    // (id, Wh, text, linked): numbers as f64 on both sides, JSON integers and floats differ.
    let shown: Vec<(String, f64, String, bool)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row[0].as_str().unwrap().to_owned(),
                row[1].as_f64().unwrap(),
                row[2].as_str().unwrap().to_owned(),
                row[3].as_bool().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, f64, String, bool)> = answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let wh = item["value"].as_f64().unwrap();
            (
                item["charge_point_id"].as_str().unwrap().to_owned(),
                wh,
                kwh_text(wh),
                true,
            )
        })
        .collect();
    assert_eq!(
        shown, expected,
        "table#fleet-top: order, values and links as GET /fleet/top"
    );
    assert!(!shown.is_empty(), "the fixture has consumers");

    // The CSV link carries the current filters: the 30 days and the group.
    let href = browser
        .attr("a[data-download=\"transactions-csv\"]", "href")
        .await
        .expect("the CSV link");
    assert!(href.starts_with("/api/v1/transactions.csv?"), "{href}");
    let mut filters = query_pairs(&href);
    filters.sort();
    let mut wanted = vec![
        (
            "from".to_owned(),
            daily["from"].as_str().unwrap().to_owned(),
        ),
        ("to".to_owned(), daily["to"].as_str().unwrap().to_owned()),
    ];
    if !group.is_empty() {
        wanted.push(("group".to_owned(), group.to_owned()));
    }
    wanted.sort();
    assert_eq!(filters, wanted, "the CSV link's filters: {href}");
    hourly_total
}

/// A duration as the dashboard shows it (`format.js`): `45 s`, `12 min 05 s`, `1 h 05 min`,
/// `2 d 3 h`.
fn duration_text(seconds: f64) -> String {
    let total = seconds.round() as u64;
    let minutes = total / 60;
    let hours = minutes / 60;
    if total < 60 {
        format!("{total} s")
    } else if minutes < 60 {
        format!("{minutes} min {:02} s", total % 60)
    } else if hours < 24 {
        format!("{hours} h {:02} min", minutes % 60)
    } else {
        format!("{} d {} h", hours / 24, hours % 24)
    }
}

/// One admin API request's raw answer: status and body bytes.
async fn api_bytes(server: &RunningServer, path: &str) -> (u16, Vec<u8>) {
    let url = format!("http://{}{path}", server.http_addr);
    let mut response = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish()
        .get(&url)
        .insert_header(("Authorization", format!("Bearer {TOKEN}")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let body = response.body().limit(16 << 20).await.expect("body");
    (response.status().as_u16(), body.to_vec())
}

/// Checks table#fleet-transactions, as it shows `group`, against every transaction of
/// `GET /api/v1/transactions` with the same filters: the first page, then each page "More"
/// adds, until the button is gone. Returns how many rows it shows.
async fn check_fleet_transactions(server: &RunningServer, browser: &Browser, group: &str) -> usize {
    let table = dataset(browser, "table#fleet-transactions").await;
    let daily = dataset(browser, "[data-chart=\"fleet-energy-daily\"]").await;
    assert_eq!(table["group"], group, "{table}");
    assert_eq!(
        (&table["from"], &table["to"]),
        (&daily["from"], &daily["to"]),
        "{table}"
    );
    let group_param = if group.is_empty() {
        String::new()
    } else {
        format!("&group={group}")
    };
    let (status, answer) = api(
        server,
        "GET",
        &format!(
            "/api/v1/transactions?from={}&to={}&limit=1000{group_param}",
            table["from"].as_str().unwrap(),
            table["to"].as_str().unwrap()
        ),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let items = answer["items"].as_array().unwrap().clone();
    assert!(
        answer["next_cursor"].is_null(),
        "one page of 1000: {answer}"
    );

    // 50 a page: "More" while the API has more.
    let mut pages = 1;
    loop {
        let wanted = items.len().min(50 * pages);
        browser
            .wait_for(
                &format!("{wanted} rows in table#fleet-transactions"),
                WAIT,
                || async {
                    let shown = dataset(browser, "table#fleet-transactions").await;
                    (shown["rows"].as_str().and_then(|r| r.parse().ok()) == Some(wanted)
                        && shown["state"] == "ready"
                        && browser
                            .js("return document.querySelectorAll(
                                     'table#fleet-transactions tbody tr[data-transaction-id]').length")
                            .await
                            == json!(wanted))
                    .then_some(())
                },
            )
            .await;
        let more = browser.visible("button[data-more]").await;
        assert_eq!(
            more,
            wanted < items.len(),
            "button[data-more] while more transactions than rows ({wanted} of {})",
            items.len()
        );
        if !more {
            break;
        }
        browser.click("button[data-more]").await;
        pages += 1;
    }

    let rows = browser
        .js("return Array.from(document.querySelectorAll(
                     'table#fleet-transactions tbody tr[data-transaction-id]'))
                 .map(tr => {
                   const cell = (f) => tr.querySelector('[data-field=\"' + f + '\"]');
                   return [Number(tr.dataset.transactionId), tr.dataset.cpId,
                           cell('id-tag').textContent.trim(),
                           Number(cell('energy').dataset.wh), cell('energy').textContent.trim(),
                           Number(cell('duration').dataset.seconds),
                           cell('duration').textContent.trim()];
                 })")
        .await;
    type Row = (i64, String, String, f64, String, f64, String);
    let shown: Vec<Row> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r[0].as_i64().unwrap(),
                r[1].as_str().unwrap().to_owned(),
                r[2].as_str().unwrap().to_owned(),
                r[3].as_f64().unwrap(),
                r[4].as_str().unwrap().to_owned(),
                r[5].as_f64().unwrap(),
                r[6].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<Row> = items
        .iter()
        .map(|t| {
            let wh = t["energy_wh"].as_f64().unwrap();
            let seconds = t["duration_s"].as_f64().unwrap();
            (
                t["transaction_id"].as_i64().unwrap(),
                t["charge_point_id"].as_str().unwrap().to_owned(),
                t["id_tag"].as_str().unwrap().to_owned(),
                wh,
                kwh_text(wh),
                seconds,
                duration_text(seconds),
            )
        })
        .collect();
    assert_eq!(
        shown, expected,
        "table#fleet-transactions: every transaction of GET /transactions, in its order"
    );
    shown.len()
}

#[actix_web::test]
async fn the_fleet_energy_page_matches_the_fleet_api_for_the_fleet_and_a_group() {
    let redis = RedisServer::start();
    let mut config = test_config(&redis);
    config.admin.tokens = vec![TOKEN.to_owned()];
    let server = start_server(config).await;

    // A small fleet, each charge point's register rising over the last few hours: 12, 5 and
    // 8 kWh.
    let fleet = [
        ("FE-A", [1000.0, 5000.0, 9000.0, 13000.0]),
        ("FE-B", [20000.0, 21000.0, 23000.0, 25000.0]),
        ("FE-C", [500.0, 2500.0, 6500.0, 8500.0]),
    ];
    let mut connections = Vec::new();
    for (id, registers) in fleet {
        let mut cp = ChargePoint::connect(&server, id).await;
        cp.boot().await;
        for (minutes, wh) in [150u64, 90, 30, 1].into_iter().zip(registers) {
            send_register(&mut cp, wh, Duration::from_secs(minutes * 60)).await;
        }
        connections.push(cp);
    }
    // Transactions, all stopped (so the CSV is the same at every read): one each on FE-A
    // (1 h 05 min) and FE-B, 50 on FE-C, so the table needs its "More" button.
    let mut transactions = 0;
    for (i, cp) in (0u64..).zip(connections.iter_mut()) {
        let count = if i == 2 { 50 } else { 1 };
        for n in 0..count {
            let start = Duration::from_secs(7200 - n * 60 - i * 7);
            let lasts = if i == 0 { 3900 } else { 90 + n };
            let meter = 1000 * i64::try_from(n).unwrap();
            let id = start_transaction(cp, &format!("TAG-{i}-{n}"), meter, start).await;
            let stop_meter = meter + 250 * i64::try_from(i + 1).unwrap();
            stop_transaction(cp, id, stop_meter, start - Duration::from_secs(lasts)).await;
            transactions += 1;
        }
    }
    // The charge points' roll-ups, and with them the fleet roll-up, written now.
    for (id, _) in fleet {
        let (status, body) = api(
            &server,
            "GET",
            &format!("/api/v1/charge-points/{id}/aggregates"),
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = api(
        &server,
        "PUT",
        "/api/v1/groups/site-b",
        Some(TOKEN),
        Some(json!({"name": "Site B", "charge_points": ["FE-B"]})),
    )
    .await;
    assert!(status == 200 || status == 201, "{status} {body}");

    // The page asks for the token, then shows the whole fleet.
    let browser = Browser::start(false).await;
    browser
        .open(&format!("{}#/fleet", dashboard(&server)))
        .await;
    browser
        .type_into("form#token-form input[name=\"token\"]", TOKEN)
        .await;
    browser
        .click("form#token-form button[type=\"submit\"]")
        .await;
    wait_fleet_page(&browser, "").await;
    assert_eq!(
        browser
            .attr("a[data-nav=\"fleet\"]", "aria-current")
            .await
            .as_deref(),
        Some("page"),
        "the nav link of the page is current"
    );
    let options = browser
        .js(
            "return Array.from(document.querySelectorAll('select#fleet-group option'))
                 .map(o => o.value)",
        )
        .await;
    assert_eq!(
        options,
        json!(["", "site-b"]),
        "the whole fleet, then each group"
    );
    let fleet_total = check_fleet_page(&server, &browser, "").await;
    save_screenshot(&browser, "dashboard-fleet.png").await;
    assert!(
        same_wh(fleet_total, 25_000.0),
        "the fleet delivered 12 + 5 + 8 kWh in the last 48 hours, not {fleet_total} Wh"
    );
    let order = browser
        .js(
            "return Array.from(document.querySelectorAll('table#fleet-top tbody tr'))
                 .map(tr => tr.dataset.cpId)",
        )
        .await;
    assert_eq!(order, json!(["FE-A", "FE-C", "FE-B"]), "largest first");
    assert_eq!(
        check_fleet_transactions(&server, &browser, "").await,
        transactions,
        "every transaction of the fleet"
    );

    // The CSV download: the file the browser saves is the API's export of the same filters.
    let link = "a[data-download=\"transactions-csv\"]";
    let href = browser.attr(link, "href").await.expect("the CSV link");
    let name = browser.attr(link, "download").await.expect("a file name");
    browser.click(link).await;
    let bytes = browser
        .wait_for("the CSV download", WAIT, || async {
            let state = dataset(&browser, link).await;
            assert_ne!(
                state["downloadState"],
                "error",
                "{}",
                browser.describe().await
            );
            (state["downloadState"] == "done").then(|| {
                state["downloadBytes"]
                    .as_str()
                    .unwrap()
                    .parse::<usize>()
                    .unwrap()
            })
        })
        .await;
    let (status, csv) = api_bytes(&server, &href).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&csv));
    assert_eq!(bytes, csv.len(), "the page downloaded the whole export");
    let saved = browser
        .wait_for("the saved CSV file", WAIT, || async {
            std::fs::read(browser.downloads().join(&name))
                .ok()
                .filter(|saved| saved.len() == csv.len())
        })
        .await;
    assert_eq!(
        String::from_utf8(saved).unwrap(),
        String::from_utf8(csv).unwrap(),
        "the saved file is the API's CSV"
    );

    // The group: only its charge point's numbers.
    browser.select("select#fleet-group", "site-b").await;
    wait_fleet_page(&browser, "site-b").await;
    let group_total = check_fleet_page(&server, &browser, "site-b").await;
    assert!(
        same_wh(group_total, 5_000.0),
        "site-b is FE-B alone, 5 kWh, not {group_total} Wh"
    );
    let order = browser
        .js(
            "return Array.from(document.querySelectorAll('table#fleet-top tbody tr'))
                 .map(tr => tr.dataset.cpId)",
        )
        .await;
    assert_eq!(order, json!(["FE-B"]));
    assert_eq!(
        check_fleet_transactions(&server, &browser, "site-b").await,
        1,
        "FE-B's transaction only"
    );
    assert_eq!(
        browser.js("return location.hash").await,
        json!("#/fleet/site-b"),
        "the group is kept in the address"
    );

    // Back to the whole fleet: its numbers again.
    browser.select("select#fleet-group", "").await;
    wait_fleet_page(&browser, "").await;
    let again = check_fleet_page(&server, &browser, "").await;
    assert!(same_wh(again, fleet_total), "{again} != {fleet_total}");
    assert_eq!(
        check_fleet_transactions(&server, &browser, "").await,
        transactions
    );

    // On a 390 px phone the page itself never scrolls sideways (tables may, in their own box).
    browser.set_size(390, 844).await;
    browser
        .wait_for("no horizontal overflow at 390 px", WAIT, || async {
            let width = browser.js("return window.innerWidth").await.as_u64()?;
            let scroll = browser
                .js("return document.documentElement.scrollWidth")
                .await
                .as_u64()?;
            (width <= 390 && scroll <= 390).then_some(())
        })
        .await;
    browser.set_size(DESKTOP.0, DESKTOP.1).await;

    browser.assert_no_errors().await;
    browser.close().await;
    drop(connections);
}

#[actix_web::test]
async fn the_fleet_energy_page_says_when_there_is_no_energy() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let browser = Browser::start(false).await;
    browser.open(&dashboard(&server)).await;
    // From the navigation link, as a user gets there.
    browser.click("a[href=\"#/fleet\"]").await;
    wait_fleet_page(&browser, "").await;
    for chart in ["fleet-energy-hourly", "fleet-energy-daily"] {
        let shown = dataset(&browser, &format!("[data-chart=\"{chart}\"]")).await;
        assert_eq!(shown["totalWh"], "0", "{chart}: {shown}");
        assert_eq!(shown["points"], "0", "{chart} draws nothing: {shown}");
        let empty = browser
            .text(&format!("[data-chart=\"{chart}\"] .nodata"))
            .await
            .unwrap_or_default();
        assert!(
            browser
                .visible(&format!("[data-chart=\"{chart}\"] .nodata"))
                .await
                && empty.starts_with("No energy"),
            "{chart} says it has no energy: {empty:?}"
        );
    }
    assert_eq!(dataset(&browser, "table#fleet-top").await["rows"], "0");
    assert!(
        browser.visible("[data-empty=\"fleet-top\"]").await,
        "the top list says it is empty"
    );
    let transactions = dataset(&browser, "table#fleet-transactions").await;
    assert_eq!(
        (&transactions["state"], &transactions["rows"]),
        (&json!("ready"), &json!("0")),
        "{transactions}"
    );
    assert!(
        browser.visible("[data-empty=\"fleet-transactions\"]").await,
        "the transaction list says it is empty"
    );
    assert!(!browser.visible("button[data-more]").await, "nothing more");
    browser.assert_no_errors().await;
    browser.close().await;
}
