//! `ocpp-null-server`: the do-nothing OCPP 1.6J / 2.0.1 server, the ceiling reference of the
//! benchmarks.
//!
//! It accepts the same WebSocket URLs and subprotocols as ocpp-meter (`ocpp2.0.1` and `ocpp1.6`,
//! the first of the client's list that it knows, as ocpp-meter picks) and answers every CALL at
//! once with a schema-valid CALLRESULT of that protocol, storing nothing. What `ocpp-loadgen`
//! reaches against it is what this machine can do with no central system work at all;
//! ocpp-meter's figure divided by it is the ratio the performance issue targets (>= 60 %).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde::de::IgnoredAny;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// Command line.
#[derive(Parser, Debug)]
#[command(
    version,
    about = "Do-nothing OCPP 1.6J / 2.0.1 server (benchmark ceiling)"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    runtime.block_on(serve(args.listen))
}

async fn serve(addr: SocketAddr) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    eprintln!("ocpp-null-server listening on {addr}");
    let next_tx = Arc::new(AtomicI64::new(1));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let next_tx = next_tx.clone();
                tokio::spawn(async move {
                    // Per-connection errors end that connection only.
                    let _ = connection(stream, &next_tx).await;
                });
            }
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// The OCPP version of one connection, negotiated in the WebSocket handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `ocpp1.6`, also what a client that offers no subprotocol gets.
    V16,
    /// `ocpp2.0.1`.
    V201,
}

/// The subprotocol to answer to a `Sec-WebSocket-Protocol` offer: the first offered that this
/// server speaks, or none.
fn negotiate(offered: &str) -> Option<(Protocol, &'static str)> {
    offered.split(',').find_map(|p| match p.trim() {
        "ocpp1.6" => Some((Protocol::V16, "ocpp1.6")),
        "ocpp2.0.1" => Some((Protocol::V201, "ocpp2.0.1")),
        _ => None,
    })
}

/// Accepts `ocpp2.0.1` or `ocpp1.6`, then answers every CALL until the peer goes away.
async fn connection(stream: TcpStream, next_tx: &AtomicI64) -> Result<()> {
    let _ = stream.set_nodelay(true);
    let mut protocol = Protocol::V16;
    // The error type is tungstenite's `ErrorResponse` (an HTTP response), fixed by its callback
    // signature; it is never built here.
    #[allow(clippy::result_large_err)]
    let negotiation = |request: &Request, mut response: Response| {
        let offered = request
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if let Some((chosen, name)) = negotiate(offered) {
            protocol = chosen;
            response
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(name));
        }
        Ok(response)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(stream, negotiation)
        .await
        .context("handshake")?;
    while let Some(message) = ws.next().await {
        let text = match message.context("receive")? {
            Message::Text(text) => text,
            Message::Close(_) => break,
            _ => continue,
        };
        // Just enough parsing for the envelope; the payload is skipped, not built.
        let Ok((kind, unique_id, action, _)) =
            serde_json::from_str::<(u8, String, String, IgnoredAny)>(text.as_str())
        else {
            continue;
        };
        if kind != 2 {
            continue;
        }
        let reply = match protocol {
            Protocol::V16 => json!([3, unique_id, reply_v16(&action, next_tx)]),
            Protocol::V201 => match reply_v201(&action) {
                Some(payload) => json!([3, unique_id, payload]),
                None => json!([
                    4,
                    unique_id,
                    "NotImplemented",
                    format!("{action} is not a charging station to CSMS action"),
                    {}
                ]),
            },
        };
        ws.send(Message::text(reply.to_string()))
            .await
            .context("send")?;
    }
    Ok(())
}

/// The current time as OCPP writes it.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The 1.6 CALLRESULT payload of `action`: accepted, with a fresh transaction id where one is
/// due; `{}` for the rest (their 1.6 responses have no required field).
fn reply_v16(action: &str, next_tx: &AtomicI64) -> Value {
    let accepted = json!({"status": "Accepted"});
    match action {
        "BootNotification" => {
            json!({"status": "Accepted", "currentTime": now(), "interval": 300})
        }
        "Heartbeat" => json!({"currentTime": now()}),
        "StartTransaction" => json!({
            "transactionId": next_tx.fetch_add(1, Ordering::Relaxed),
            "idTagInfo": accepted}),
        "Authorize" | "StopTransaction" => json!({"idTagInfo": accepted}),
        "DataTransfer" => accepted,
        _ => json!({}),
    }
}

/// The 2.0.1 CALLRESULT payload of `action`, for every action a charging station sends to the
/// CSMS (accepted, or `{}` where the response has no required field); `None` for the others,
/// which a charging station has no business sending (answered `NotImplemented`).
fn reply_v201(action: &str) -> Option<Value> {
    let accepted = json!({"status": "Accepted"});
    Some(match action {
        "BootNotification" => {
            json!({"status": "Accepted", "currentTime": now(), "interval": 300})
        }
        "Heartbeat" => json!({"currentTime": now()}),
        "Authorize" => json!({"idTokenInfo": accepted}),
        // The null server does not parse the event, so it cannot tell Started (where an
        // idTokenInfo would be due) from the rest: `{}` is valid for all three.
        "TransactionEvent"
        | "StatusNotification"
        | "MeterValues"
        | "NotifyEvent"
        | "SecurityEventNotification"
        | "FirmwareStatusNotification"
        | "LogStatusNotification"
        | "ClearedChargingLimit"
        | "NotifyChargingLimit"
        | "NotifyCustomerInformation"
        | "NotifyDisplayMessages"
        | "NotifyMonitoringReport"
        | "NotifyReport"
        | "PublishFirmwareStatusNotification"
        | "ReportChargingProfiles"
        | "ReservationStatusUpdate" => json!({}),
        "DataTransfer"
        | "SignCertificate"
        | "GetCertificateStatus"
        | "NotifyEVChargingNeeds"
        | "NotifyEVChargingSchedule" => accepted,
        "Get15118EVCertificate" => json!({"status": "Accepted", "exiResponse": ""}),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ocpp-schemas");

    /// Every action a 2.0.1 charging station sends to the CSMS (OCPP 2.0.1 part 2, 1.x).
    const STATION_ACTIONS: &[&str] = &[
        "Authorize",
        "BootNotification",
        "ClearedChargingLimit",
        "DataTransfer",
        "FirmwareStatusNotification",
        "Get15118EVCertificate",
        "GetCertificateStatus",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "NotifyChargingLimit",
        "NotifyCustomerInformation",
        "NotifyDisplayMessages",
        "NotifyEVChargingNeeds",
        "NotifyEVChargingSchedule",
        "NotifyEvent",
        "NotifyMonitoringReport",
        "NotifyReport",
        "PublishFirmwareStatusNotification",
        "ReportChargingProfiles",
        "ReservationStatusUpdate",
        "SecurityEventNotification",
        "SignCertificate",
        "StatusNotification",
        "TransactionEvent",
    ];

    fn schema_errors(path: &str, draft: jsonschema::Draft, instance: &Value) -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let schema: Value = serde_json::from_str(&text).unwrap();
        let validator = jsonschema::options()
            .with_draft(draft)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        validator
            .iter_errors(instance)
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn every_v201_station_action_gets_a_schema_valid_response() {
        for action in STATION_ACTIONS {
            let payload = reply_v201(action).unwrap_or_else(|| panic!("{action} not answered"));
            let path = format!("{SCHEMAS}/v201/{action}Response.json");
            let errors = schema_errors(&path, jsonschema::Draft::Draft6, &payload);
            assert!(errors.is_empty(), "{action}: {payload} -> {errors:?}");
        }
    }

    #[test]
    fn v201_csms_actions_are_not_answered_with_a_result() {
        // The schema directory's other requests are the CSMS's own calls: a CALLRESULT of `{}`
        // would be invalid for most of them, so they get NotImplemented.
        let dir = format!("{SCHEMAS}/v201");
        let mut csms_actions = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let Some(action) = name.strip_suffix("Request.json") else {
                continue;
            };
            if !STATION_ACTIONS.contains(&action) {
                csms_actions += 1;
                assert_eq!(reply_v201(action), None, "{action}");
            }
        }
        assert_eq!(csms_actions, 64 - STATION_ACTIONS.len());
    }

    #[test]
    fn v16_replies_are_unchanged_and_schema_valid() {
        let next_tx = AtomicI64::new(41);
        let start = reply_v16("StartTransaction", &next_tx);
        assert_eq!(start["transactionId"], 41);
        assert_eq!(reply_v16("StartTransaction", &next_tx)["transactionId"], 42);
        for (action, payload) in [
            ("BootNotification", reply_v16("BootNotification", &next_tx)),
            ("Heartbeat", reply_v16("Heartbeat", &next_tx)),
            ("StartTransaction", start),
            ("StopTransaction", reply_v16("StopTransaction", &next_tx)),
            ("Authorize", reply_v16("Authorize", &next_tx)),
            ("MeterValues", reply_v16("MeterValues", &next_tx)),
            ("DataTransfer", reply_v16("DataTransfer", &next_tx)),
        ] {
            let path = format!("{SCHEMAS}/v16/{action}Response.json");
            let errors = schema_errors(&path, jsonschema::Draft::Draft4, &payload);
            assert!(errors.is_empty(), "{action}: {payload} -> {errors:?}");
        }
    }

    #[test]
    fn negotiation_picks_the_first_offered_protocol_it_speaks() {
        assert_eq!(negotiate("ocpp1.6"), Some((Protocol::V16, "ocpp1.6")));
        assert_eq!(negotiate("ocpp2.0.1"), Some((Protocol::V201, "ocpp2.0.1")));
        assert_eq!(
            negotiate("ocpp2.1, ocpp2.0.1,ocpp1.6"),
            Some((Protocol::V201, "ocpp2.0.1"))
        );
        assert_eq!(
            negotiate("ocpp1.6, ocpp2.0.1"),
            Some((Protocol::V16, "ocpp1.6"))
        );
        assert_eq!(negotiate("ocpp1.5"), None);
        assert_eq!(negotiate(""), None);
    }
}
