//! `GET /api/v1/openapi.json`: every route the admin API registers is documented, and every
//! documented route exists. The routes are read from the code that registers them
//! (`src/api/mod.rs` and each resource file's `configure`), not from a hand-kept list, so a new
//! route without `#[utoipa::path]` fails here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed step should stop the test loudly

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::*;
use ocpp_meter::RunningServer;
use serde_json::{json, Value};

/// `(METHOD, path)` of a route, the path in OpenAPI form (`/api/v1/charge-points/{id}`).
type Route = (String, String);

fn source(name: &str) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let file = dir.join(format!("{name}.rs"));
    let file = if file.exists() {
        file
    } else {
        dir.join(name).join("mod.rs")
    };
    std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"))
}

/// The body of `pub fn configure(...) { ... }` in `text`, if any.
fn configure_body(text: &str) -> Option<&str> {
    let start = text.find("pub fn configure(")?;
    let open = start + text[start..].find('{')?;
    let mut depth = 0;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&text[open + 1..open + i]);
                }
            }
            _ => {}
        }
    }
    None
}

/// The routes one resource file registers in its `configure`: every `.route("path",
/// web::method()...)`. Anything the scanner does not understand fails loudly instead of being
/// skipped.
fn routes_of(module: &str, prefix: &str) -> Vec<Route> {
    let text = source(module);
    let Some(body) = configure_body(&text) else {
        return Vec::new();
    };
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join("");
    for unsupported in [
        "web::resource(",
        "web::scope(",
        ".service(",
        ".default_service(",
    ] {
        assert!(
            !flat.contains(unsupported),
            "{module}.rs registers with {unsupported}: teach tests/openapi.rs to read it"
        );
    }
    let mut routes = Vec::new();
    for (i, _) in flat.match_indices(".route(\"") {
        let rest = &flat[i + ".route(\"".len()..];
        let end = rest.find('"').expect("closing quote");
        let path = &rest[..end];
        let rest = rest[end + 1..]
            .strip_prefix(",web::")
            .unwrap_or_else(|| panic!("{module}.rs: route {path} is not `web::method()`"));
        let method = &rest[..rest.find("()").expect("web::method()")];
        assert!(
            ["get", "post", "put", "delete", "patch", "head"].contains(&method),
            "{module}.rs: route {path} uses web::{method}()"
        );
        routes.push((method.to_uppercase(), format!("{prefix}{path}")));
    }
    let calls = flat.matches(".route(").count();
    assert_eq!(
        calls,
        routes.len(),
        "{module}.rs has a .route( call the scanner cannot read"
    );
    routes
}

/// Every route the admin API registers: `api::configure` in `src/api/mod.rs` names the
/// resource modules, those inside `web::scope("/api/v1")` get that prefix.
fn registered_routes() -> BTreeSet<Route> {
    let text = source("mod");
    let body = configure_body(&text).expect("api::configure");
    let scope = body
        .find("web::scope(\"/api/v1\")")
        .expect("the /api/v1 scope");
    let mut routes = BTreeSet::new();
    let mut modules = 0;
    for (i, _) in body.match_indices("::configure") {
        let start = body[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |p| p + 1);
        let module = &body[start..i];
        let prefix = if i > scope { "/api/v1" } else { "" };
        modules += 1;
        for route in routes_of(module, prefix) {
            assert!(routes.insert(route.clone()), "{route:?} registered twice");
        }
    }
    assert!(modules >= 8, "api::configure names only {modules} modules");
    routes
}

/// Every operation in the document.
fn documented_routes(doc: &Value) -> BTreeSet<Route> {
    let mut routes = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "post", "put", "delete", "patch", "head"].contains(&method.as_str()) {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    routes
}

async fn openapi(server: &RunningServer) -> Value {
    let (status, doc) = get(server, "/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    doc
}

#[actix_web::test]
async fn every_registered_route_is_documented_and_every_documented_route_exists() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let doc = openapi(&server).await;
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3."),
        "an OpenAPI 3 document: {}",
        doc["openapi"]
    );

    // /api/v1 needs the admin token, the root routes stay open.
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        json!("bearer")
    );
    assert_eq!(
        doc["paths"]["/api/v1/charge-points"]["get"]["security"],
        json!([{"admin_token": []}])
    );
    assert!(doc["paths"]["/metrics"]["get"].get("security").is_none());

    let registered = registered_routes();
    // The scanner itself: it must see routes of both levels.
    for known in [
        ("GET", "/health"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/charge-points/{id}/meter-values"),
        ("PUT", "/api/v1/thresholds"),
    ] {
        assert!(
            registered.contains(&(known.0.to_owned(), known.1.to_owned())),
            "the route scanner missed {known:?}: {registered:#?}"
        );
    }
    let documented = documented_routes(&doc);
    let undocumented: Vec<&Route> = registered.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes without #[utoipa::path] (or missing from their file's Doc / openapi.rs nest): {undocumented:#?}"
    );
    let phantom: Vec<&Route> = documented.difference(&registered).collect();
    assert!(
        phantom.is_empty(),
        "documented routes that are not registered: {phantom:#?}"
    );

    // Every documented operation reaches a handler: not the API's 404 "no such route", not 405.
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    for (method, path) in &documented {
        let concrete = path
            .replace("{id}", "1")
            .replace("{alert_id}", "no-such-alert")
            .replace("{id_tag}", "TAG");
        let url = format!("http://{}{}", server.http_addr, concrete);
        let request = match method.as_str() {
            "GET" => client.get(&url),
            "POST" => client.post(&url),
            "PUT" => client.put(&url),
            "DELETE" => client.delete(&url),
            other => panic!("unexpected method {other}"),
        };
        let mut response = if method == "GET" {
            request.send().await
        } else {
            request.send_json(&json!({})).await
        }
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status().as_u16();
        assert_ne!(status, 405, "{method} {path} is not routed");
        if status == 404 {
            let body: Value = response.json().await.expect("JSON 404");
            assert_ne!(
                body["error"],
                json!("no such route"),
                "{method} {path} is documented but not routed"
            );
        }
    }
    server.shutdown().await;
}

/// Validates `value` against the component schema `name` of the document.
fn assert_matches(doc: &Value, name: &str, value: &Value) {
    let schema = json!({
        "$ref": format!("#/components/schemas/{name}"),
        "components": doc["components"],
    });
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "{value} does not match {name}: {errors:?}"
    );
}

#[actix_web::test]
async fn real_responses_match_their_documented_schemas() {
    let redis = RedisServer::start();
    let server = start_server(test_config(&redis)).await;
    let doc = openapi(&server).await;
    let mut cp = ChargePoint::connect(&server, "CP-DOC").await;
    cp.boot().await;
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let payload = meter_values(
        1,
        None,
        &now,
        json!([
            {"value": "1234", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": "230", "measurand": "Voltage", "unit": "V", "phase": "L1-N"},
        ]),
    );
    assert_eq!(cp.call("MeterValues", payload).await, json!({}));
    cp.call(
        "StatusNotification",
        json!({"connectorId": 1, "errorCode": "NoError", "status": "Available"}),
    )
    .await;

    let (_, health) = get(&server, "/health").await;
    assert_matches(&doc, "Health", &health);
    let (_, ready) = get(&server, "/ready").await;
    assert_matches(&doc, "Ready", &ready);
    let (_, list) = get(&server, "/api/v1/charge-points").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_matches(&doc, "ChargePoint", &list[0]);
    let (_, one) = get(&server, "/api/v1/charge-points/CP-DOC").await;
    assert_eq!(one["connectors"].as_array().map(Vec::len), Some(1));
    assert_matches(&doc, "ChargePoint", &one);
    let (_, values) = get(&server, "/api/v1/charge-points/CP-DOC/meter-values").await;
    assert_eq!(values["samples"].as_array().map(Vec::len), Some(2));
    assert_matches(&doc, "MeterValues", &values);
    let (_, latest) = get(&server, "/api/v1/charge-points/CP-DOC/meter-values/latest").await;
    assert_matches(&doc, "LatestSamples", &latest);
    let (_, thresholds) = get(&server, "/api/v1/thresholds").await;
    assert_matches(&doc, "Thresholds", &thresholds);
    let (_, scoped) = get(&server, "/api/v1/charge-points/CP-DOC/thresholds").await;
    assert_matches(&doc, "Thresholds", &scoped);
    let started = cp
        .call(
            "StartTransaction",
            json!({"connectorId": 1, "idTag": "DOC", "meterStart": 1000, "timestamp": now}),
        )
        .await;
    let txn = started["transactionId"].as_i64().expect("transaction id");
    cp.call(
        "StopTransaction",
        json!({"transactionId": txn, "meterStop": 1500, "timestamp": now}),
    )
    .await;
    let txns_path = "/api/v1/charge-points/CP-DOC/transactions";
    assert!(
        eventually(Duration::from_secs(5), || async {
            get(&server, txns_path).await.1["transactions"][0]["state"] == "stopped"
        })
        .await
    );
    let (_, txns) = get(&server, txns_path).await;
    assert_matches(&doc, "ChargePointTransactions", &txns);
    let (_, one_txn) = get(&server, &format!("/api/v1/transactions/{txn}")).await;
    assert_matches(&doc, "Transaction", &one_txn);
    let (status, error) = get(&server, "/api/v1/charge-points/NEVER-SEEN").await;
    assert_eq!(status, 404);
    assert_matches(&doc, "ErrorBody", &error);
    // The schemas are strict enough to catch a wrong shape.
    let validator_refuses = std::panic::catch_unwind(|| {
        assert_matches(&doc, "ChargePoint", &json!({"id": 1}));
    });
    assert!(validator_refuses.is_err());
    drop(cp);
    server.shutdown().await;
}
