//! `ocpp-loadgen`: N simulated OCPP 1.6J or 2.0.1 charge points over real WebSockets, for
//! benchmarks.
//!
//! Each charge point connects (subprotocol `ocpp1.6`, or `ocpp2.0.1` with `--protocol
//! ocpp2.0.1`; optionally from one of several loopback source addresses so more than ~28,000
//! connections fit), sends BootNotification and StartTransaction, then MeterValues either
//! closed-loop (the next as soon as the CALLRESULT arrives) or at a fixed interval. In 2.0.1 the
//! same flow is BootNotification, StatusNotification, TransactionEvent `Started`, then
//! TransactionEvent `Updated` events carrying the same sampled values a 1.6 MeterValues carries
//! (so samples per second compare one to one), and `Ended` before the charge point disconnects.
//! It stops by itself after `--duration-secs` or once `--messages` of those readings messages
//! were acknowledged, and prints ONE JSON line of results, the same fields for both protocols,
//! so `scripts/bench.sh` can parse it. Targets are restricted to loopback: this is a benchmark
//! tool, not a way to load someone else's server.
//!
//! A tokio multi-thread runtime is used instead of actix: the generator has no actors, and
//! tokio-tungstenite lets every connection be a plain `Send` task spread over all cores.

mod payloads;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use payloads::Transaction201;

/// The OCPP version the simulated charge points speak (and offer as the WebSocket subprotocol).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// OCPP 1.6J: MeterValues inside a StartTransaction.
    #[value(name = "ocpp1.6")]
    V16,
    /// OCPP 2.0.1: TransactionEvent `Updated` events carrying meterValue.
    #[value(name = "ocpp2.0.1")]
    V201,
}

impl Protocol {
    /// The subprotocol name offered in `Sec-WebSocket-Protocol`.
    fn subprotocol(self) -> &'static str {
        match self {
            Protocol::V16 => "ocpp1.6",
            Protocol::V201 => "ocpp2.0.1",
        }
    }
}

/// Command line: every knob of a scenario, defaults = the ingest scenario.
#[derive(Parser, Debug, Clone)]
#[command(
    version,
    about = "OCPP 1.6J / 2.0.1 load generator (loopback targets only)"
)]
struct Args {
    /// OCPP version of every simulated charge point: the 1.6 flow (MeterValues) or the 2.0.1
    /// one (TransactionEvent `Updated` with the same sampled values).
    #[arg(long, value_enum, default_value = "ocpp1.6")]
    protocol: Protocol,
    /// Base URL; the charge point id is appended (`ws://127.0.0.1:8080/ocpp/`).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ocpp/")]
    url: String,
    /// Number of simulated charge points.
    #[arg(long, default_value_t = 200)]
    charge_points: u32,
    /// Sampled values per MeterValues message (per TransactionEvent `Updated` in 2.0.1).
    #[arg(long, default_value_t = 10)]
    samples_per_message: u32,
    /// 0: closed loop (next MeterValues when the CALLRESULT arrives); otherwise one MeterValues
    /// per charge point every this many milliseconds.
    #[arg(long, default_value_t = 0)]
    interval_ms: u64,
    /// Stop after this many seconds of MeterValues (connect time not included).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Stop earlier once this many MeterValues were acknowledged in total (0: no limit).
    #[arg(long, default_value_t = 0)]
    messages: u64,
    /// New connections per second (0: all at once).
    #[arg(long, default_value_t = 0)]
    connect_rate: u32,
    /// Number of local source addresses (127.0.0.1, 127.0.0.2, ...) the connections spread over.
    #[arg(long, default_value_t = 1)]
    source_addrs: u8,
    /// Every Nth MeterValues of a charge point reports 60 kW (above the 50 kW default) so the
    /// alert path is exercised (0: never).
    #[arg(long, default_value_t = 0)]
    breach_every: u64,
    /// Prefix of the charge point ids (`LG000001`, ...).
    #[arg(long, default_value = "LG")]
    id_prefix: String,
    /// Seconds to wait for any one reply before counting the charge point as failed.
    #[arg(long, default_value_t = 30)]
    reply_timeout_secs: u64,
    /// After the MeterValues phase, keep every connection open and silent for this many
    /// seconds (answering server calls only), so the server's memory per idle charge point can
    /// be measured; the results line is printed after it.
    #[arg(long, default_value_t = 0)]
    idle_secs: u64,
    /// Backfill: stamp the first MeterValues this many seconds in the past and each further
    /// one `--backfill-step-ms` later, instead of "now" (0: live timestamps). Seeds history
    /// through the real ingest path for the read benchmarks.
    #[arg(long, default_value_t = 0)]
    backfill_secs_ago: u64,
    /// Leave acknowledgements out of the latency histogram for this many seconds after the
    /// start, so a fleet's connect phase does not count as its steady state (acks and samples
    /// are still counted).
    #[arg(long, default_value_t = 0)]
    warmup_secs: u64,
    /// Spacing of backfilled readings in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    backfill_step_ms: u64,
}

/// Counters shared by every charge point task.
#[derive(Default)]
struct Totals {
    /// Charge points whose boot and transaction were accepted.
    connected: AtomicU64,
    /// Charge points that failed to connect or broke off before the end.
    failures: AtomicU64,
    /// MeterValues (2.0.1: TransactionEvent `Updated`) answered with a CALLRESULT.
    acks: AtomicU64,
    /// Sampled values in those MeterValues.
    samples_acked: AtomicU64,
    /// MeterValues (2.0.1: TransactionEvent `Updated`) answered with a CALLERROR.
    call_errors: AtomicU64,
}

/// What one charge point task hands back: its latency histogram (microseconds).
type Latencies = Histogram<u64>;

fn new_histogram() -> Result<Latencies> {
    // 1 µs .. 10 min, 3 significant digits: enough for any sane ack latency.
    Histogram::new_with_bounds(1, 600_000_000, 3).context("histogram bounds")
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    let line = runtime.block_on(run(args))?;
    println!("{line}");
    Ok(())
}

/// Resolves the target and refuses anything that is not loopback.
fn target(url: &str) -> Result<SocketAddr> {
    let rest = url
        .strip_prefix("ws://")
        .context("only ws:// URLs are supported")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to nothing"))?;
    if !addr.ip().is_loopback() {
        bail!("{addr} is not a loopback address: ocpp-loadgen only loads local servers");
    }
    Ok(addr)
}

async fn run(args: Args) -> Result<String> {
    let addr = target(&args.url)?;
    if args.source_addrs == 0 {
        bail!("--source-addrs must be at least 1");
    }
    let totals = Arc::new(Totals::default());
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.charge_points as usize);
    // All charge points get the same deadline, counted from the first connection, so a slow
    // connect phase shortens the measured phase instead of extending the run without bound.
    let deadline = started + Duration::from_secs(args.duration_secs);
    let idle_until = deadline + Duration::from_secs(args.idle_secs);
    let measure_from = started + Duration::from_secs(args.warmup_secs);
    let pause = (args.connect_rate > 0).then(|| Duration::from_secs(1) / args.connect_rate);
    for n in 0..args.charge_points {
        let source = IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            1 + (n % args.source_addrs as u32) as u8,
        ));
        let id = format!("{}{:06}", args.id_prefix, n + 1);
        let (args2, totals2, stop2) = (args.clone(), totals.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = match new_histogram() {
                Ok(h) => h,
                Err(_) => return None,
            };
            let outcome = charge_point(
                &args2,
                addr,
                source,
                &id,
                Phases {
                    deadline,
                    idle_until,
                    measure_from,
                },
                &totals2,
                &stop2,
                &mut hist,
            )
            .await;
            if let Err(error) = outcome {
                totals2.failures.fetch_add(1, Ordering::Relaxed);
                eprintln!("{id}: {error:#}");
            }
            Some(hist)
        }));
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
    }
    let mut hist = new_histogram()?;
    for task in tasks {
        if let Ok(Some(h)) = task.await {
            hist.add(h).context("merging histograms")?;
        }
    }
    // Rates over the MeterValues phase, not the idle one.
    let elapsed = if args.idle_secs > 0 {
        deadline.saturating_duration_since(started).as_secs_f64()
    } else {
        started.elapsed().as_secs_f64()
    };
    // Rates over the whole run (connect phase included, so the figure is conservative).
    let measured = elapsed.max(0.001);
    let ms = |us: u64| us as f64 / 1000.0;
    let samples = totals.samples_acked.load(Ordering::Relaxed);
    let line = json!({
        "connected": totals.connected.load(Ordering::Relaxed),
        "failures": totals.failures.load(Ordering::Relaxed),
        "acks": totals.acks.load(Ordering::Relaxed),
        "call_errors": totals.call_errors.load(Ordering::Relaxed),
        "samples_acked": samples,
        "samples_per_sec": (samples as f64 / measured).round(),
        "messages_per_sec": (totals.acks.load(Ordering::Relaxed) as f64 / measured).round(),
        "latency_ms": {
            "p50": ms(hist.value_at_quantile(0.50)),
            "p90": ms(hist.value_at_quantile(0.90)),
            "p99": ms(hist.value_at_quantile(0.99)),
            "max": ms(hist.max()),
        },
        "duration_secs": (elapsed * 1000.0).round() / 1000.0,
    });
    Ok(line.to_string())
}

/// When a charge point's run changes phase.
#[derive(Debug, Clone, Copy)]
struct Phases {
    /// End of the MeterValues phase.
    deadline: Instant,
    /// End of the idle phase (== `deadline` without one).
    idle_until: Instant,
    /// Latencies before this are not recorded (warm-up).
    measure_from: Instant,
}

/// The OCPP-J conversation of one charge point; returns when the run is over.
#[allow(clippy::too_many_arguments)]
async fn charge_point(
    args: &Args,
    addr: SocketAddr,
    source: IpAddr,
    id: &str,
    phases: Phases,
    totals: &Totals,
    stop: &AtomicBool,
    hist: &mut Latencies,
) -> Result<()> {
    let socket = TcpSocket::new_v4().context("socket")?;
    socket
        .bind(SocketAddr::new(source, 0))
        .with_context(|| format!("binding {source}"))?;
    socket.set_nodelay(true).context("nodelay")?;
    let stream = socket.connect(addr).await.context("connect")?;
    let mut request = format!("{}{}", args.url, id)
        .into_client_request()
        .context("request")?;
    // tungstenite fails the handshake unless the server agrees to the offered subprotocol.
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(args.protocol.subprotocol()),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .context("WebSocket handshake")?;
    let timeout = Duration::from_secs(args.reply_timeout_secs);
    let Phases {
        deadline,
        idle_until,
        measure_from,
    } = phases;
    let mut seq: u64 = 0;

    let backfill = args.backfill_secs_ago > 0;
    let backfill_start = chrono::Utc::now()
        - chrono::Duration::seconds(i64::try_from(args.backfill_secs_ago).unwrap_or(i64::MAX));
    let backfill_step =
        chrono::Duration::milliseconds(i64::try_from(args.backfill_step_ms).unwrap_or(i64::MAX));

    let boot = match args.protocol {
        Protocol::V16 => payloads::boot_v16(),
        Protocol::V201 => payloads::boot_v201(),
    };
    let reply = call(&mut ws, &mut seq, "BootNotification", boot, timeout).await?;
    if reply.get("status").and_then(Value::as_str) != Some("Accepted") {
        bail!("BootNotification not accepted: {reply}");
    }
    let mut tx = match args.protocol {
        Protocol::V16 => {
            let start = payloads::start_transaction_v16(chrono::Utc::now());
            let reply = call(&mut ws, &mut seq, "StartTransaction", start, timeout).await?;
            let tx = reply
                .get("transactionId")
                .and_then(Value::as_i64)
                .context("StartTransaction without transactionId")?;
            Transaction::V16(tx)
        }
        Protocol::V201 => {
            let now = chrono::Utc::now();
            let status = payloads::status_notification_v201(now);
            call(&mut ws, &mut seq, "StatusNotification", status, timeout).await?;
            let mut tx = Transaction201::new(id, now.timestamp_millis());
            // A backfilled transaction starts just before its first (historic) reading and,
            // like every event of it, is reported as sent after the fact (`offline`).
            let begun = if backfill {
                backfill_start - chrono::Duration::seconds(1)
            } else {
                now
            };
            let started = tx.started(begun, backfill);
            call(&mut ws, &mut seq, "TransactionEvent", started, timeout).await?;
            Transaction::V201(tx)
        }
    };
    totals.connected.fetch_add(1, Ordering::Relaxed);

    let mut ticker = (args.interval_ms > 0)
        .then(|| tokio::time::interval(Duration::from_millis(args.interval_ms)));
    let mut energy: u64 = 0;
    let mut last_ts = chrono::Utc::now() - chrono::Duration::seconds(1);
    let mut sent: u64 = 0;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        if let Some(ticker) = ticker.as_mut() {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = tokio::time::sleep_until(deadline.into()) => break,
            }
        }
        let now = if backfill {
            let at = backfill_start + backfill_step * i32::try_from(sent).unwrap_or(i32::MAX);
            if at > chrono::Utc::now() {
                break; // the backfill reached the present
            }
            at
        } else {
            // Strictly increasing timestamps, so no two messages of a charge point look like
            // the repeat the server's de-duplication drops.
            chrono::Utc::now().max(last_ts + chrono::Duration::milliseconds(1))
        };
        last_ts = now;
        sent += 1;
        energy += 10;
        let breach = args.breach_every > 0 && sent.is_multiple_of(args.breach_every);
        let n = args.samples_per_message;
        let (action, payload) = match &mut tx {
            Transaction::V16(tx) => (
                "MeterValues",
                payloads::meter_values_v16(n, *tx, now, energy, breach),
            ),
            Transaction::V201(tx) => (
                "TransactionEvent",
                tx.updated(n, now, energy, breach, backfill),
            ),
        };
        let begun = Instant::now();
        match call(&mut ws, &mut seq, action, payload, timeout).await {
            Ok(_) => {
                if begun >= measure_from {
                    let _ = hist.record(begun.elapsed().as_micros().max(1) as u64);
                }
                let acks = totals.acks.fetch_add(1, Ordering::Relaxed) + 1;
                totals
                    .samples_acked
                    .fetch_add(args.samples_per_message as u64, Ordering::Relaxed);
                if args.messages > 0 && acks >= args.messages {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            Err(error) if error.is::<CallError>() => {
                totals.call_errors.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => return Err(error),
        }
    }
    // Idle phase (only when asked for: a run that stops early, at --messages or at the end of
    // a backfill, must not sit until the deadline): connected and silent, except for answering
    // the server's own calls.
    while args.idle_secs > 0 && Instant::now() < idle_until {
        match tokio::time::timeout_at(idle_until.into(), ws.next()).await {
            Err(_) => break,
            Ok(None) => bail!("connection closed while idle"),
            Ok(Some(message)) => {
                if let Message::Text(text) = message.context("receive")? {
                    let frame: Value = serde_json::from_str(text.as_str()).unwrap_or(Value::Null);
                    if frame.get(0).and_then(Value::as_u64) == Some(2) {
                        let id = frame.get(1).and_then(Value::as_str).unwrap_or("");
                        let reply = json!([4, id, "NotSupported", "ocpp-loadgen", {}]);
                        ws.send(Message::text(reply.to_string()))
                            .await
                            .context("send")?;
                    }
                }
            }
        }
    }
    // 2.0.1 ends its transaction before going away (after the idle phase, so an idle 2.0.1
    // charge point holds an open transaction like a 1.6 one). Its answer is not counted.
    if let Transaction::V201(tx) = &mut tx {
        let ended_at = if backfill {
            last_ts + chrono::Duration::milliseconds(1)
        } else {
            chrono::Utc::now().max(last_ts + chrono::Duration::milliseconds(1))
        };
        let ended = tx.ended(ended_at, backfill);
        call(&mut ws, &mut seq, "TransactionEvent", ended, timeout).await?;
    }
    // A clean close, so the server ends the session as a normal disconnect.
    let _ = ws.close(None).await;
    while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {}
    Ok(())
}

/// The open transaction of a charge point, as its protocol names it.
enum Transaction {
    /// 1.6: the integer id the server assigned in the StartTransaction answer.
    V16(i64),
    /// 2.0.1: the charge point's own string id and event sequence.
    V201(Transaction201),
}

/// The server answered a CALL with a CALLERROR: counted, not fatal.
#[derive(Debug, thiserror::Error)]
#[error("CALLERROR {0}")]
struct CallError(String);

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// Sends one CALL and waits for its reply, answering any server-initiated CALL in between
/// with a CALLERROR `NotSupported` (the generator simulates a minimal charge point; the code
/// is the same in 1.6 and 2.0.1).
async fn call(
    ws: &mut Ws,
    seq: &mut u64,
    action: &str,
    payload: Value,
    timeout: Duration,
) -> Result<Value> {
    *seq += 1;
    let unique_id = seq.to_string();
    let frame = json!([2, unique_id, action, payload]).to_string();
    ws.send(Message::text(frame)).await.context("send")?;
    loop {
        let message = tokio::time::timeout(timeout, ws.next())
            .await
            .with_context(|| format!("no reply to {action} within {timeout:?}"))?
            .with_context(|| format!("connection closed waiting for {action}"))?
            .context("receive")?;
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => bail!("server closed the connection: {frame:?}"),
            _ => continue,
        };
        let frame: Value = serde_json::from_str(text.as_str()).context("reply is not JSON")?;
        let kind = frame.get(0).and_then(Value::as_u64);
        let id = frame.get(1).and_then(Value::as_str);
        match kind {
            Some(2) => {
                let reply = json!([4, id.unwrap_or(""), "NotSupported", "ocpp-loadgen", {}]);
                ws.send(Message::text(reply.to_string()))
                    .await
                    .context("send")?;
            }
            Some(3) if id == Some(unique_id.as_str()) => {
                return Ok(frame.get(2).cloned().unwrap_or(Value::Null));
            }
            Some(4) if id == Some(unique_id.as_str()) => {
                return Err(CallError(frame.to_string()).into());
            }
            _ => {}
        }
    }
}
