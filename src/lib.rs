//! ocpp-meter: an OCPP 1.6J central system that collects meter values from EV charge points,
//! buffers and stores them in Redis, and serves them over an admin HTTP API.
//!
//! # Layout
//!
//! - [`config`]: `config.toml`, environment overrides, validation.
//! - [`ocpp`]: OCPP-J framing and the OCPP 1.6 messages, converted to and from the domain
//!   requests of the `actors` crate.
//! - [`ws`]: the WebSocket endpoint charge points connect to.
//! - [`api`]: the admin HTTP API.
//! - [`dashboard`]: the live web dashboard served by the admin listener at `/`.
//! - [`memory`]: freed memory handed back to the operating system.
//! - [`mqtt`]: samples and alerts published to an MQTT broker (`[mqtt] url`), with Home
//!   Assistant discovery.
//! - [`start`] / [`RunningServer`]: wiring and graceful shutdown, used by `main.rs` and by the
//!   integration tests (which bind ephemeral ports).
//!
//! The protocol-agnostic core (actors, storage) lives in the `actors` crate; see its docs for
//! the actor graph.

pub mod api;
pub mod config;
pub mod dashboard;
pub mod memory;
pub mod metrics;
pub mod mqtt;
pub mod notify;
pub mod ocpp;
pub mod security;
pub mod ws;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Supervisor};
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

use actors::aggregator::{
    Aggregator, AggregatorSettings, AggregatorStats, Flush as AggregatorFlush,
};
use actors::buffer::BufferSettings;
use actors::charge_point::{ChargePointActor, ChargePointSettings, Close, CloseReason, Services};
use actors::counters::IngestCounters;
use actors::fleet::{Fleet, FleetSettings, Targets};
use actors::redis_pool::{build_pool, PoolSettings};
use actors::registry::Registry;
use actors::store::aggregates::BucketRetention;
use actors::store::read_cache::{ReadCache, ReadCacheStats};
use actors::store::tracked_reads::{TrackedLink, TrackedReads, TrackedSettings, TrackedStats};
use actors::store::{keys, reads};
use actors::stream::SampleStream;
use actors::txn_ids::TransactionIds;
use actors::wal::{Replayed, Wal, WalStats};
use actors::writer::{Drain, RedisWriter, WriteBatch, WriterSettings, WriterStats};

pub use config::Config;

/// How long a new session waits for the instance that held its charge point to close and
/// flush it (see README, "Running several instances"): long enough for a healthy Redis to take
/// a buffer, short enough that a stuck instance only delays the charge point's upgrade.
pub const TAKEOVER_WAIT: Duration = Duration::from_secs(5);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from the configuration.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The Redis pool could not be built (malformed URL).
    #[error(transparent)]
    Redis(#[from] actors::redis_pool::PoolError),
    /// `[tls]` cert, key or client_ca could not be loaded.
    #[error(transparent)]
    Tls(#[from] security::tls::TlsError),
    /// The write-ahead log could not be opened (directory not writable, or in use).
    #[error(transparent)]
    Wal(#[from] actors::wal::OpenError),
}

/// A started server: its bound addresses and what shutdown needs.
pub struct RunningServer {
    /// Where charge points connect (the actual port when 0 was configured).
    pub ws_addr: SocketAddr,
    /// Where the admin API listens.
    pub http_addr: SocketAddr,
    /// The admin token generated at start (no `[admin] tokens` and a non-loopback
    /// `server.http_addr`); `None` when tokens are configured or the API is loopback-only.
    pub admin_token: Option<String>,
    /// Connected charge points.
    pub registry: Registry<ChargePointActor>,
    /// Writer counters (stored, pending, dropped samples).
    pub writer_stats: Arc<WriterStats>,
    /// Ingest counters.
    pub counters: Arc<IngestCounters>,
    /// Live event stream counters (connected SSE clients, slow ones dropped).
    pub event_hub: Arc<api::event_hub::EventHubCounters>,
    /// The live stream, so tests can publish what other services (alerts) would.
    pub sample_stream: SampleStream,
    /// The writer, drained on shutdown.
    writer: Addr<RedisWriter>,
    /// Roll-up counters (samples rolled up, dropped, flushes).
    pub aggregator_stats: Arc<AggregatorStats>,
    /// The roll-up aggregator, flushed on shutdown after the writer.
    aggregator: Addr<Aggregator>,
    /// The API's read cache counters (hits, misses, bytes), also in `/metrics`.
    pub read_cache_stats: Arc<ReadCacheStats>,
    /// Counters of the reads answered from memory under Redis's client tracking, also in
    /// `/metrics`.
    pub tracked_stats: Arc<TrackedStats>,
    /// The alert supervisor, whose pending alert writes are flushed on shutdown.
    alert_supervisor: Addr<actors::alerts::AlertSupervisor>,
    /// This instance in the fleet: its id and counters; its lease is removed on shutdown.
    pub fleet: Fleet,
    /// Write-ahead log counters (`None` with `wal.enabled = false`).
    pub wal_stats: Option<Arc<WalStats>>,
    /// The write-ahead log, closed last on shutdown.
    wal: Option<Wal>,
    /// The WebSocket listener.
    ws_server: ServerHandle,
    /// The admin listener.
    http_server: ServerHandle,
    /// How long shutdown waits for Redis.
    shutdown_timeout: Duration,
}

/// What a shutdown achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Whether everything buffered reached Redis within the timeout.
    pub drained: bool,
    /// Samples that had not reached Redis when the timeout ran out.
    pub samples_not_written: u64,
}

fn bind(addr: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).map_err(|source| StartError::Bind {
        addr: addr.to_owned(),
        source,
    })
}

/// Starts the listeners and actors on the current actix system. Redis being down is not an
/// error: the server accepts and buffers, reports not-ready, and writes once Redis is back.
pub async fn start(config: Config) -> Result<RunningServer, StartError> {
    let pool_settings = PoolSettings {
        target: config.redis.target(),
        pool_size: config.redis.pool_size,
        connect_timeout: Duration::from_millis(config.redis.connect_timeout_ms),
        response_timeout: Duration::from_millis(config.redis.response_timeout_ms),
        wait_replicas: config.redis.wait_replicas,
        wait_timeout: Duration::from_millis(config.redis.wait_timeout_ms),
    };
    let pool = build_pool(&pool_settings)?;
    // The listeners are bound first: the instance id defaults to the OCPP listener's port.
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let ws_listener = bind(&config.server.ws_addr)?;
    ws::tune_listener(
        &ws_listener,
        config.limits.socket_send_buffer_bytes,
        Duration::from_secs(config.limits.write_timeout_secs),
    )
    .map_err(|source| StartError::Bind {
        addr: config.server.ws_addr.clone(),
        source,
    })?;
    let handshake_timeout = Duration::from_secs(config.limits.handshake_timeout_secs);
    let http_listener = bind(&config.server.http_addr)?;
    let ws_addr = ws_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.server.ws_addr.clone(),
            source,
        })?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.server.http_addr.clone(),
            source,
        })?;
    if let Err(error) = reads::ping(&pool).await {
        log::error!(
            "Redis at {} is unreachable ({error}). Accepting charge points anyway and keeping their samples in memory until it is back.",
            config.redis.describe()
        );
    }

    // The write-ahead log is opened (and its leftovers read) before anything can be answered.
    let (wal, replay) = match config.wal_settings() {
        Some(settings) => {
            let (wal, mut replay) = Wal::open(settings, Arc::new(WalStats::default()))?;
            if !replay.is_empty() {
                match actors::wal::replay::trim(&pool, wal.id(), &mut replay).await {
                    Ok(trimmed) => log::info!(
                        "WAL replay: {} of {} records already in the raw chunks, {} in the roll-ups.",
                        trimmed.raw,
                        replay.len(),
                        trimmed.rollup
                    ),
                    Err(error) => log::warn!(
                        "WAL replay: Redis did not answer ({error}); replaying every record (reads de-duplicate samples stored twice)."
                    ),
                }
            }
            (Some(wal), replay)
        }
        None => (None, Vec::new()),
    };

    let writer_stats = Arc::new(WriterStats::default());
    let writer_settings = WriterSettings {
        max_pending_samples: config.buffer.max_pending_samples,
        raw_days: u32::try_from(config.retention.raw_days).unwrap_or(u32::MAX),
        retry_initial: Duration::from_millis(config.redis.retry_initial_ms),
        retry_max: Duration::from_millis(config.redis.retry_max_ms),
        max_samples_per_pipeline: config.buffer.max_samples.max(1000) * 10,
        latest_interval: Duration::from_secs(config.buffer.latest_interval_secs),
        wal_marks_key: wal.as_ref().map(|wal| keys::wal_raw_marks(wal.id())),
    };
    let writer = {
        let pool = pool.clone();
        let stats = writer_stats.clone();
        Supervisor::start(move |_| RedisWriter::new(pool, writer_settings, stats))
    };

    // Several instances, one fleet: leases, owner records, takeovers, routed calls, events.
    let fleet = Fleet::new(
        FleetSettings {
            instance_id: config.instance_id(ws_addr.port()),
            lease: Duration::from_secs(config.server.instance_lease_secs),
            pubsub_urls: match config.redis.mode {
                config::RedisMode::Standalone => vec![config.redis.url.clone()],
                config::RedisMode::Cluster => config.redis.urls.clone(),
            },
            takeover_wait: TAKEOVER_WAIT,
            call_timeout: Duration::from_secs(config.ocpp.call_timeout_secs),
            ws_addr: ws_addr.to_string(),
            http_addr: http_addr.to_string(),
        },
        pool.clone(),
    );
    let registry = Registry::default();
    let counters = Arc::new(IngestCounters::default());
    let unwritten = Arc::new(actors::backlog::Backlog::default());
    let services = Services {
        settings: Arc::new(ChargePointSettings {
            heartbeat_interval_secs: config.ocpp.heartbeat_interval_secs,
            id_tag_allow_list: config.id_tag_allow_list(),
            buffer: BufferSettings {
                max_samples: config.buffer.max_samples,
                max_age: Duration::from_secs(config.buffer.max_age_secs),
                dedupe_window: config.buffer.dedupe_window_samples,
                dedupe_max_age: Duration::from_secs(config.buffer.dedupe_window_secs),
            },
            stats_ttl_secs: config.retention.stats_hours.saturating_mul(3600),
            call_timeout: Duration::from_secs(config.ocpp.call_timeout_secs),
            metering: config.ocpp.metering.profile().map(Arc::new),
            max_pending_samples: config.buffer.max_pending_samples,
        }),
        writer: writer.clone().recipient(),
        stream: SampleStream::default(),
        transaction_ids: TransactionIds::new(pool.clone()),
        registry: registry.clone(),
        counters: counters.clone(),
        pool: pool.clone(),
        wal: wal.clone(),
        writer_stats: writer_stats.clone(),
        unwritten: unwritten.clone(),
        fleet: Arc::new(fleet.clone()),
    };
    // Remote commands and metering profiles (src/api/commands.rs, src/api/metering.rs).
    let commands_state = api::commands::CommandsState {
        metering_defaults: Arc::new(config.ocpp.metering.to_profile()),
        metering_enabled: config.ocpp.metering.enabled,
    };
    // Live event stream (GET /api/v1/events): one hub, fed by the live stream, that hands
    // each SSE client a bounded channel.
    let event_hub_counters = Arc::new(api::event_hub::EventHubCounters::default());
    let event_hub = {
        let counters = event_hub_counters.clone();
        let fleet = fleet.clone();
        Supervisor::start(move |_| {
            api::event_hub::EventHub::new(Default::default(), counters, Some(fleet))
        })
    };
    // The hub takes the checked feed: samples and session events forwarded by the alert
    // supervisor, so each alert follows the sample that raised it.
    services
        .stream
        .subscribe_checked(event_hub.clone().recipient(), event_hub.clone().recipient());
    services
        .stream
        .subscribe_alerts(event_hub.clone().recipient());
    let sample_stream = services.stream.clone();

    // Hourly and daily roll-ups, fed by the sample stream, flushed on shutdown.
    let aggregator_stats = Arc::new(AggregatorStats::default());
    let aggregator = {
        let pool = pool.clone();
        let stats = aggregator_stats.clone();
        let settings = AggregatorSettings {
            hourly_days: u32::try_from(config.retention.hourly_days).unwrap_or(u32::MAX),
            daily_days: u32::try_from(config.retention.daily_days).unwrap_or(u32::MAX),
            retry_initial: Duration::from_millis(config.redis.retry_initial_ms),
            retry_max: Duration::from_millis(config.redis.retry_max_ms),
            flush_interval: Duration::from_secs(config.buffer.rollup_interval_secs),
            max_clock_skew: Duration::from_secs(config.alerts.max_clock_skew_secs),
            wal_mark_field: wal
                .as_ref()
                .map(|wal| keys::wal_rollup_mark_field(wal.id())),
        };
        let backlog = services.stream.rollups();
        Supervisor::start(move |_| Aggregator::new(pool, settings, stats, backlog.clone()))
    };
    services
        .stream
        .subscribe_tracked(aggregator.clone().recipient());
    let retention = (
        u32::try_from(config.retention.hourly_days).unwrap_or(u32::MAX),
        u32::try_from(config.retention.daily_days).unwrap_or(u32::MAX),
    );
    repair_fleet_rollup(&pool, &replay, retention).await;
    replay_into(
        replay,
        &writer,
        &aggregator,
        &services.stream.rollups(),
        &unwritten,
    )
    .await;
    // One cache, one memory bound, for both large reads (meter values and roll-ups).
    let read_cache = Arc::new(ReadCache::new(
        usize::try_from(config.reads.cache_bytes).unwrap_or(usize::MAX),
        BucketRetention {
            hourly_days: u32::try_from(config.retention.hourly_days).unwrap_or(u32::MAX),
            daily_days: u32::try_from(config.retention.daily_days).unwrap_or(u32::MAX),
        },
    ));
    let read_cache_stats = read_cache.stats();
    // Large reads Redis vouches for through client tracking are answered from memory; a batch
    // counted on its way to Redis forgets its charge point's (store::tracked_reads).
    let tracked_reads = Arc::new(TrackedReads::new(&TrackedSettings {
        url: match &pool_settings.target {
            actors::redis_pool::RedisTarget::Standalone(url) if read_cache.enabled() => {
                Some(url.clone())
            }
            _ => None,
        },
        max_age: Duration::from_secs(config.reads.tracked_secs),
        budget_bytes: usize::try_from(config.reads.cache_bytes / 4).unwrap_or(usize::MAX),
        connect_timeout: pool_settings.connect_timeout,
        response_timeout: pool_settings.response_timeout,
    }));
    services
        .stream
        .rollups()
        .forget_marks_in(tracked_reads.clone());
    unwritten.forget_marks_in(tracked_reads.clone());
    let tracked_link = Arc::new(TrackedLink::new(tracked_reads.clone()));
    let aggregates_state = api::aggregates::AggregatesState {
        pool: pool.clone(),
        aggregator: aggregator.clone(),
        backlog: services.stream.rollups(),
        cache: read_cache.clone(),
        tracked: tracked_link.clone(),
    };

    // Threshold and data-quality alerts, fed by the sample stream and the session events;
    // the webhook (when configured) subscribes to the alerts they publish.
    let alert_supervisor = {
        let pool = pool.clone();
        let stream = services.stream.clone();
        let settings = actors::alerts::AlertSettings {
            defaults: config.alert_thresholds(),
            max_clock_skew_secs: config.alerts.max_clock_skew_secs,
            stale_after: Duration::from_secs(
                config.ocpp.meter_value_sample_interval.saturating_mul(3),
            ),
            retention_days: config.retention.alerts_days,
            retry_initial: Duration::from_millis(config.redis.retry_initial_ms),
            retry_max: Duration::from_millis(config.redis.retry_max_ms),
        };
        Supervisor::start(move |_| actors::alerts::AlertSupervisor::new(pool, stream, settings))
    };
    services
        .stream
        .subscribe(alert_supervisor.clone().recipient());
    services
        .stream
        .subscribe_events(alert_supervisor.clone().recipient());
    fleet
        .start(
            Targets {
                registry: registry.clone(),
                writer: writer.clone(),
                aggregator: aggregator.clone(),
                alerts: alert_supervisor.clone(),
            },
            event_hub.clone().recipient(),
        )
        .await;
    let mut webhook_stats = None;
    if !config.alerts.webhook.url.is_empty() {
        let settings = notify::webhook::WebhookSettings {
            url: config.alerts.webhook.url.clone(),
            timeout: Duration::from_millis(config.alerts.webhook.timeout_ms),
            max_queue: config.alerts.webhook.max_queue,
            retry_max: Duration::from_secs(config.alerts.webhook.retry_max_secs),
        };
        let stats = Arc::new(notify::webhook::WebhookStats::default());
        webhook_stats = Some(stats.clone());
        let webhook =
            Supervisor::start(move |_| notify::webhook::WebhookNotifier::new(settings, stats));
        services.stream.subscribe_alerts(webhook.recipient());
    }
    // MQTT publication (when `[mqtt] url` is set): samples and alerts, like the webhook.
    let mqtt_stats = config.mqtt.settings(fleet.id()).map(|settings| {
        let stats = Arc::new(mqtt::MqttStats::default());
        let publisher = {
            let stats = stats.clone();
            Supervisor::start(move |_| mqtt::MqttPublisher::new(settings, stats))
        };
        services.stream.subscribe(publisher.clone().recipient());
        services.stream.subscribe_alerts(publisher.recipient());
        stats
    });

    // Prometheus metrics (GET /metrics): read-at-scrape over the counters above, plus the
    // OCPP message and alert counts that nothing else keeps.
    let metrics = Arc::new(metrics::Metrics::new(metrics::Sources {
        registry: registry.clone(),
        counters: counters.clone(),
        writer: writer_stats.clone(),
        aggregator: aggregator_stats.clone(),
        rollup_backlog: services.stream.rollups(),
        unwritten: unwritten.clone(),
        event_hub: event_hub_counters.clone(),
        webhook: webhook_stats,
        wal: wal.as_ref().map(|wal| wal.stats().clone()),
        cluster: pool.cluster_counters(),
        fleet: (fleet.id().to_owned(), fleet.counters().clone()),
        read_cache: read_cache_stats.clone(),
        tracked: tracked_reads.stats(),
        mqtt: mqtt_stats,
    }));
    {
        use actix::Actor as _;
        let alert_counter = metrics::AlertCounter(metrics.alerts_raised.clone()).start();
        services.stream.subscribe_alerts(alert_counter.recipient());
    }
    // Charge point HTTP Basic authentication on the upgrade (OCPP security profiles 1 and 2).
    let auth = Arc::new(security::ChargePointAuth::new(
        pool.clone(),
        config.ocpp.unknown_charge_points,
        security::rate_limit::FailureLimiter::new(
            config.limits.auth_failures_max,
            Duration::from_secs(config.limits.auth_failure_window_secs),
        ),
        counters.clone(),
    ));
    let ws_state = ws::WsState {
        auth,
        fleet: fleet.clone(),
        services: Arc::new(services),
        settings: Arc::new(ws::WsSettings {
            ping_interval: Duration::from_secs(config.ocpp.ping_interval_secs),
            idle_timeout: Duration::from_secs(config.ocpp.idle_timeout_secs),
            max_frame_bytes: config.limits.max_frame_bytes,
            max_connections: config.limits.max_connections,
            ocpp_messages: metrics.ocpp_messages.clone(),
            require_client_certificate: !config.tls.client_ca.is_empty(),
            certificate_refusals: metrics.certificate_refusals.clone(),
            write_timeout: Duration::from_secs(config.limits.write_timeout_secs),
            control_frames_per_minute: config.limits.control_frames_per_minute,
            max_inflight_calls: config.limits.max_inflight_calls,
            hostile: metrics.hostile_closed.clone(),
            protocols: config.protocols(),
        }),
        connects: Arc::new(security::connect_rate::ConnectLimiter::new(
            config.limits.connects_per_address_per_sec,
            config.limits.connect_burst,
        )),
    };
    let api_state = api::ApiState {
        reads_pool: pool.clone(),
        pool,
        read_cache,
        registry: registry.clone(),
        writer: writer.clone(),
        unwritten,
        writer_stats: writer_stats.clone(),
        counters: counters.clone(),
        max_pending_samples: config.buffer.max_pending_samples,
        events: event_hub,
        alerts: alert_supervisor.clone(),
        wal: wal.clone(),
        fleet: fleet.clone(),
        lag: api::ReadLag {
            raw_secs: config.buffer.max_age_secs,
            latest_secs: config
                .buffer
                .max_age_secs
                .saturating_add(config.buffer.latest_interval_secs),
            rollup_secs: config.buffer.rollup_interval_secs,
            stats_secs: actors::stats::PERSIST_INTERVAL.as_secs(),
        },
        tracked: tracked_link,
    };

    let hostile = metrics.hostile_closed.clone();
    let shutdown_timeout = config.shutdown_timeout();
    // Mixed profiles per listener: the admin listener never asks for a client certificate; the
    // charge point listener requires one when `tls.client_ca` is set (security profile 3).
    let client_certificates = !config.tls.client_ca.is_empty();
    let (tls, ws_tls) = if config.tls.cert.is_empty() {
        (None, None)
    } else {
        let cert = std::path::Path::new(&config.tls.cert);
        let key = std::path::Path::new(&config.tls.key);
        let admin = security::tls::server_config(cert, key)?;
        let charge_points = if client_certificates {
            security::tls::server_config_with_client_ca(
                cert,
                key,
                std::path::Path::new(&config.tls.client_ca),
                metrics.certificate_refusals.clone(),
            )?
        } else {
            admin.clone()
        };
        (Some(admin), Some(charge_points))
    };
    let (admin_tokens, admin_token) = security::AdminTokens::from_config(&config.admin, http_addr);
    let dashboard = config.admin.dashboard;

    let ws_server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(ws_state.clone()))
            .wrap(actix_web::middleware::from_fn(ws::limit_connects))
            .configure(ws::configure)
    })
    .workers(workers)
    .backlog(4096)
    .max_connections(config.limits.max_connections.max(1))
    .client_request_timeout(handshake_timeout)
    .tls_handshake_timeout(handshake_timeout)
    // One hook per connection (a second `on_connect` would replace the first): the guard that
    // counts connections ending without a request, and the verified client certificate's CN,
    // read once per connection for the upgrade's check (profile 3).
    .on_connect({
        let count_incomplete = ws::on_connect(hostile);
        move |connection: &dyn std::any::Any, data: &mut actix_web::dev::Extensions| {
            count_incomplete(connection, data);
            if client_certificates {
                security::client_cert::on_connect(connection, data);
            }
        }
    })
    .disable_signals()
    .shutdown_timeout(shutdown_timeout.as_secs());
    let ws_server = match ws_tls {
        Some(tls) => ws_server.listen_rustls_0_23(ws_listener, tls),
        None => ws_server.listen(ws_listener),
    }
    .map_err(|source| StartError::Bind {
        addr: config.server.ws_addr.clone(),
        source,
    })?
    .run();
    // Each admin API worker reads Redis through pools of its own, made on its own thread: a
    // connection's I/O is driven by the thread that made it, and the shared pool's are mostly
    // made by the writer on the main thread, which the fleet keeps busy. The large reads have
    // a second pool whose connections skip deadpool's PING round trip at each hand-out
    // (docs/performance.md, issue 13 reads, third round). Half of `redis.pool_size` each.
    let worker_pool_settings = PoolSettings {
        pool_size: pool_settings.pool_size.div_ceil(2),
        ..pool_settings.clone()
    };
    let http_server = HttpServer::new(move || {
        let (mut api_state, mut aggregates_state) = (api_state.clone(), aggregates_state.clone());
        // Each worker's tracked connection is its own too, made by its first large read.
        let tracked = Arc::new(TrackedLink::new(api_state.tracked.reads().clone()));
        api_state.tracked = tracked.clone();
        aggregates_state.tracked = tracked;
        let own = api_state.pool.sibling(&worker_pool_settings);
        let reads = api_state.pool.reads_sibling(&worker_pool_settings);
        match (own, reads) {
            (Ok(own), Ok(reads)) => {
                api_state.pool = own;
                api_state.reads_pool = reads.clone();
                aggregates_state.pool = reads;
            }
            // Not reached: the same settings built the shared pool above.
            (Err(error), _) | (_, Err(error)) => {
                log::warn!("The admin API worker reads through the shared Redis pool ({error}).")
            }
        }
        // One connection of each opened now, on this worker's thread: the first read does not
        // wait for it, and Redis holds the worker's connections from the start.
        for pool in [api_state.pool.clone(), api_state.reads_pool.clone()] {
            actix_web::rt::spawn(async move {
                if let Err(error) = pool.get().await {
                    log::debug!("An admin API worker could not open a Redis connection yet ({error}); its first read will.");
                }
            });
        }
        App::new()
            .app_data(web::Data::new(api_state))
            .app_data(web::Data::new(aggregates_state))
            .app_data(web::Data::new(commands_state.clone()))
            .app_data(web::Data::from(metrics.clone()))
            .app_data(web::Data::new(admin_tokens.clone()))
            .wrap(actix_web::middleware::from_fn(
                security::admin_tokens::require_token,
            ))
            .configure(api::json_error_handlers)
            .configure(|cfg| {
                if dashboard {
                    dashboard::configure(cfg);
                }
            })
            .configure(api::configure)
    })
    .workers(workers.min(2))
    .disable_signals()
    .shutdown_timeout(5);
    let http_server = match &tls {
        Some(tls) => http_server.listen_rustls_0_23(http_listener, tls.clone()),
        None => http_server.listen(http_listener),
    }
    .map_err(|source| StartError::Bind {
        addr: config.server.http_addr.clone(),
        source,
    })?
    .run();
    memory::start_trimmer();
    let ws_handle = ws_server.handle();
    let http_handle = http_server.handle();
    actix_web::rt::spawn(ws_server);
    actix_web::rt::spawn(http_server);
    let (ws_scheme, http_scheme) = if tls.is_some() {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    log::info!("Listening for charge points on {ws_scheme}://{ws_addr}/ocpp/{{id}} and for the admin API on {http_scheme}://{http_addr}.");
    if client_certificates {
        log::info!("Charge points must present a client certificate from tls.client_ca whose CN is their id (OCPP security profile 3); the admin listener asks for none.");
    }
    if dashboard {
        log::info!("The dashboard is at {http_scheme}://{http_addr}/ .");
    }

    Ok(RunningServer {
        ws_addr,
        http_addr,
        admin_token,
        registry,
        writer_stats,
        counters,
        event_hub: event_hub_counters,
        sample_stream,
        writer,
        aggregator_stats,
        aggregator,
        read_cache_stats,
        tracked_stats: tracked_reads.stats(),
        alert_supervisor,
        fleet,
        wal_stats: wal.as_ref().map(|wal| wal.stats().clone()),
        wal,
        ws_server: ws_handle,
        http_server: http_handle,
        shutdown_timeout,
    })
}

/// How long start-up waits for the fleet roll-up repair before going on without it.
const FLEET_REPAIR_TIMEOUT: Duration = Duration::from_secs(5);

/// Before the replay: the buckets of every logged reading that Redis's roll-ups already hold
/// get their summaries copied into the fleet roll-up again (`fleet_rollup::repair`), in case the
/// previous run died between a merge and its fleet update. Runs before any replayed or new flush
/// can reach the aggregator, so it cannot overwrite a newer summary; best effort (a failure or
/// timeout is logged, the next write of each bucket repairs it too).
async fn repair_fleet_rollup(
    pool: &actors::redis_pool::Pool,
    replay: &[Replayed],
    retention: (u32, u32),
) {
    use actors::store::aggregates::Period;
    let mut buckets = std::collections::BTreeSet::new();
    for replayed in replay.iter().filter(|r| r.rollup.is_none()) {
        let cp = replayed.record.charge_point.as_str();
        for sample in &replayed.record.samples {
            let t = sample.timestamp.timestamp_millis();
            for period in [Period::Hour, Period::Day] {
                buckets.insert((cp.to_owned(), period, period.start_of(t)));
            }
        }
    }
    if buckets.is_empty() {
        return;
    }
    let buckets: Vec<_> = buckets.into_iter().collect();
    let repair = actors::store::fleet_rollup::repair(pool, &buckets, retention);
    match tokio::time::timeout(FLEET_REPAIR_TIMEOUT, repair).await {
        Ok(Ok(0)) => {}
        Ok(Ok(changed)) => log::warn!(
            "WAL replay: {changed} charge point summaries were missing from the fleet roll-up (the last run stopped between a roll-up write and its fleet update); copied again."
        ),
        Ok(Err(e)) => log::warn!(
            "WAL replay: could not check the fleet roll-up of {} buckets ({e}); their next write repairs it.",
            buckets.len()
        ),
        Err(_) => log::warn!(
            "WAL replay: checking the fleet roll-up of {} buckets took over {FLEET_REPAIR_TIMEOUT:?}; their next write repairs it.",
            buckets.len()
        ),
    }
}

/// Feeds what the write-ahead log kept from the previous run to the writer (raw chunks and
/// record changes) and the aggregator (roll-ups), each record only on the paths that may lack
/// it; the alert rules and live feed do not see it again. Each batch is awaited into its actor
/// (queued there, not written: that needs no Redis), so when the listeners open the writer's
/// backlog already holds the replay, ahead of anything new, and `/ready` counts it.
async fn replay_into(
    replay: Vec<Replayed>,
    writer: &Addr<RedisWriter>,
    aggregator: &Addr<Aggregator>,
    rollups: &actors::backlog::Backlog,
    unwritten: &Arc<actors::backlog::Backlog>,
) {
    for Replayed {
        mut record,
        raw,
        rollup,
        samples_stored,
    } in replay
    {
        if rollup.is_some() {
            let batch = actors::stream::SampleBatch {
                charge_point: record.charge_point.clone(),
                samples: Arc::from(record.samples.as_slice()),
                wal: rollup,
                recorded_offline: false,
            };
            rollups.add(&batch.charge_point);
            if aggregator.send(batch).await.is_err() {
                log::error!("WAL replay: the aggregator is gone; the rest stays in the log.");
                return;
            }
        }
        if raw.is_some() {
            if samples_stored {
                record.samples.clear();
            }
            let wal_last = if record.samples.is_empty() {
                0
            } else {
                record.lsn
            };
            let batch = WriteBatch::samples(
                record.charge_point,
                record.samples,
                record.ops,
                raw,
                wal_last,
                unwritten,
            );
            if writer.send(batch).await.is_err() {
                log::error!("WAL replay: the writer is gone; the rest stays in the log.");
                return;
            }
        }
    }
}

impl RunningServer {
    /// Graceful shutdown: stop accepting, close every session with 1001, let every buffer flush,
    /// wait (up to `server.shutdown_timeout_secs`) until the writer has put everything in Redis,
    /// then stop the listeners.
    pub async fn shutdown(self) -> ShutdownReport {
        self.ws_server.pause().await;
        let sessions = self.registry.all();
        log::info!("Shutting down: closing {} sessions.", sessions.len());
        for (_, connection) in sessions {
            connection.actor.do_send(Close(CloseReason::Shutdown));
        }
        let deadline = tokio::time::Instant::now() + self.shutdown_timeout;
        // Sessions stop, then their buffers stop and flush; wait for both.
        while (!self.registry.is_empty() || self.counters.open_buffers.load(Ordering::SeqCst) > 0)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let drained = matches!(
            tokio::time::timeout(remaining, self.writer.send(Drain)).await,
            Ok(Ok(true))
        );
        // Roll-ups after the writer: every sample reached the aggregator before its buffer
        // flushed, so this writes the last of them.
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let rolled_up = matches!(
            tokio::time::timeout(remaining, self.aggregator.send(AggregatorFlush)).await,
            Ok(Ok(true))
        );
        if !rolled_up {
            log::error!("Shutdown timed out before every roll-up was in Redis; some are lost.");
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let alerts_stored = matches!(
            tokio::time::timeout(
                remaining,
                self.alert_supervisor.send(actors::alerts::FlushAlerts)
            )
            .await,
            Ok(Ok(true))
        );
        if !alerts_stored {
            log::error!(
                "Shutdown timed out before every alert change was in Redis; some are lost."
            );
        }
        let not_written = self.writer_stats.samples_pending.load(Ordering::Relaxed);
        if drained {
            log::info!("Every buffered sample is in Redis.");
        } else {
            log::error!(
                "Shutdown timed out with {not_written} samples not yet in Redis; they are lost."
            );
        }
        if let Some(wal) = self.wal {
            // Everything drained is out of the log's hands: a clean stop leaves it empty.
            let _ = actix_web::rt::task::spawn_blocking(move || wal.close()).await;
        }
        self.fleet.stop().await;
        self.ws_server.stop(false).await;
        self.http_server.stop(true).await;
        ShutdownReport {
            drained,
            samples_not_written: if drained { 0 } else { not_written },
        }
    }
}
