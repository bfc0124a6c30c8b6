//! The `ocpp-meter` binary: CLI -> config -> start -> wait for SIGINT/SIGTERM -> graceful
//! shutdown.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;

use ocpp_meter::Config;

/// OCPP 1.6J central system for meter values.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Configuration file. Without this flag ./config.toml is read when it exists, otherwise the
    /// built-in defaults (the same as the shipped config.toml).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Overrides server.ws_addr.
    #[arg(long, value_name = "HOST:PORT")]
    ws_addr: Option<String>,
    /// Overrides server.http_addr.
    #[arg(long, value_name = "HOST:PORT")]
    http_addr: Option<String>,
    /// Overrides redis.url.
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// Check the configuration, print it and exit.
    #[arg(long)]
    check_config: bool,
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let default = PathBuf::from("config.toml");
    let path = match &cli.config {
        Some(path) => Some(path.clone()),
        None => default.exists().then_some(default),
    };
    let mut config = Config::load(path.as_deref(), std::env::vars())?;
    if let Some(addr) = &cli.ws_addr {
        config.server.ws_addr = addr.clone();
    }
    if let Some(addr) = &cli.http_addr {
        config.server.http_addr = addr.clone();
    }
    if let Some(url) = &cli.redis_url {
        config.redis.url = url.clone();
    }
    config.validate()?;
    Ok(config)
}

/// Resolves on SIGINT or SIGTERM.
async fn termination() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let config = load_config(&cli)?;
    if cli.check_config {
        println!("{config:#?}");
        return Ok(());
    }
    actix_web::rt::System::new().block_on(async move {
        let server = ocpp_meter::start(config).await?;
        let signal = termination().await?;
        log::info!("{signal} received; shutting down gracefully.");
        let report = server.shutdown().await;
        if !report.drained {
            anyhow::bail!(
                "{} samples could not be written to Redis before the shutdown timeout",
                report.samples_not_written
            );
        }
        Ok(())
    })
}
