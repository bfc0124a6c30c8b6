//! `ocpp-null-server`: the do-nothing OCPP 1.6J server, the ceiling reference of the benchmarks.
//!
//! It accepts the same WebSocket URLs and subprotocol as ocpp-meter and answers every CALL at
//! once with a schema-valid CALLRESULT, storing nothing. What `ocpp-loadgen` reaches against it
//! is what this machine can do with no central system work at all; ocpp-meter's figure divided
//! by it is the ratio the performance issue targets (>= 60 %).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde::de::IgnoredAny;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// Command line.
#[derive(Parser, Debug)]
#[command(version, about = "Do-nothing OCPP 1.6J server (benchmark ceiling)")]
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

/// Accepts `ocpp1.6`, then answers every CALL until the peer goes away.
async fn connection(stream: TcpStream, next_tx: &AtomicI64) -> Result<()> {
    let _ = stream.set_nodelay(true);
    // The error type is tungstenite's `ErrorResponse` (an HTTP response), fixed by its callback
    // signature; it is never built here.
    #[allow(clippy::result_large_err)]
    let protocol = |request: &Request, mut response: Response| {
        let offered = request
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if offered.split(',').any(|p| p.trim() == "ocpp1.6") {
            response.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static("ocpp1.6"),
            );
        }
        Ok(response)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(stream, protocol)
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
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let accepted = json!({"status": "Accepted"});
        let payload = match action.as_str() {
            "BootNotification" => {
                json!({"status": "Accepted", "currentTime": now, "interval": 300})
            }
            "Heartbeat" => json!({"currentTime": now}),
            "StartTransaction" => json!({
                "transactionId": next_tx.fetch_add(1, Ordering::Relaxed),
                "idTagInfo": accepted}),
            "Authorize" | "StopTransaction" => json!({"idTagInfo": accepted}),
            "DataTransfer" => accepted,
            _ => json!({}),
        };
        let reply = json!([3, unique_id, payload]).to_string();
        ws.send(Message::text(reply)).await.context("send")?;
    }
    Ok(())
}
