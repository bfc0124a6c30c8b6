//! `ocpp-readgen`: measures the latency of admin API reads, for the read benchmark of issue 5.
//!
//! Sends `GET` requests to each `--url` in turn (one request at a time per URL, so the figure
//! is the latency a dashboard sees, not a queue), for `--duration-secs` or `--requests` rounds,
//! and prints ONE JSON line: per URL the count, non-200 answers, the body size and latency
//! percentiles from an HDR histogram. Targets are restricted to loopback, like `ocpp-loadgen`.
//!
//! awc on a single-threaded actix system: the client the tests already use, and one thread is
//! plenty for sequential reads.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::json;

/// Command line.
#[derive(Parser, Debug)]
#[command(version, about = "Admin API read latency (loopback targets only)")]
struct Args {
    /// URL to read (repeat for several; each is measured separately).
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Stop earlier after this many rounds (one request per URL each; 0: no limit).
    #[arg(long, default_value_t = 0)]
    requests: u64,
    /// Pause between rounds in milliseconds (0: back to back).
    #[arg(long, default_value_t = 0)]
    pause_ms: u64,
    /// Admin bearer token, if the API needs one.
    #[arg(long)]
    token: Option<String>,
}

/// What is measured for one URL.
struct Measured {
    /// Latency of 200 answers, microseconds.
    hist: Histogram<u64>,
    /// Answers other than 200, and transport errors.
    errors: u64,
    /// Body size of the last 200 answer.
    bytes: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    for url in &args.urls {
        check_loopback(url)?;
    }
    let line = actix_web::rt::System::new().block_on(run(args))?;
    println!("{line}");
    Ok(())
}

/// Refuses anything that is not a loopback `http://` URL.
fn check_loopback(url: &str) -> Result<()> {
    let rest = url
        .strip_prefix("http://")
        .context("only http:// URLs are supported")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(authority)
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to nothing"))?;
    if !addr.ip().is_loopback() {
        bail!("{addr} is not a loopback address: ocpp-readgen only reads local servers");
    }
    Ok(())
}

async fn run(args: Args) -> Result<String> {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let mut measured = Vec::with_capacity(args.urls.len());
    for _ in &args.urls {
        measured.push(Measured {
            // 1 µs .. 10 min, 3 significant digits.
            hist: Histogram::new_with_bounds(1, 600_000_000, 3).context("histogram bounds")?,
            errors: 0,
            bytes: 0,
        });
    }
    let deadline = Instant::now() + Duration::from_secs(args.duration_secs);
    let mut rounds = 0u64;
    while Instant::now() < deadline && (args.requests == 0 || rounds < args.requests) {
        rounds += 1;
        for (url, m) in args.urls.iter().zip(measured.iter_mut()) {
            let mut request = client.get(url);
            if let Some(token) = &args.token {
                request = request.bearer_auth(token);
            }
            let begun = Instant::now();
            let outcome = match request.send().await {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    response
                        .body()
                        .limit(256 * 1024 * 1024)
                        .await
                        .map(|body| (status, body.len()))
                        .map_err(|e| e.to_string())
                }
                Err(error) => Err(error.to_string()),
            };
            let took = begun.elapsed();
            match outcome {
                Ok((200, bytes)) => {
                    let _ = m.hist.record(took.as_micros().max(1) as u64);
                    m.bytes = bytes;
                }
                Ok((status, _)) => {
                    m.errors += 1;
                    eprintln!("{url}: HTTP {status}");
                }
                Err(error) => {
                    m.errors += 1;
                    eprintln!("{url}: {error}");
                }
            }
        }
        if args.pause_ms > 0 {
            actix_web::rt::time::sleep(Duration::from_millis(args.pause_ms)).await;
        }
    }
    let ms = |us: u64| us as f64 / 1000.0;
    let reads: Vec<_> = args
        .urls
        .iter()
        .zip(&measured)
        .map(|(url, m)| {
            json!({
                "url": url,
                "count": m.hist.len(),
                "errors": m.errors,
                "bytes": m.bytes,
                "latency_ms": {
                    "p50": ms(m.hist.value_at_quantile(0.50)),
                    "p90": ms(m.hist.value_at_quantile(0.90)),
                    "p99": ms(m.hist.value_at_quantile(0.99)),
                    "max": ms(m.hist.max()),
                },
            })
        })
        .collect();
    Ok(json!({ "reads": reads }).to_string())
}
