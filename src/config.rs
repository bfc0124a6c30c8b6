//! Configuration: `config.toml`, then `OCPP_METER_<SECTION>_<KEY>` environment variables, then
//! command-line flags, each overriding the one before. Every key has a default equal to the
//! shipped `config.toml` (a test holds them together), carries its unit in its name, and a bad
//! value stops the server at start with a message that names the key.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Prefix of the environment overrides.
pub const ENV_PREFIX: &str = "OCPP_METER_";

/// Why the configuration could not be used; every variant names the key or file at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file (or an override) is not valid TOML or does not fit the schema.
    #[error("invalid configuration: {0}")]
    Parse(String),
    /// An environment variable names no known key.
    #[error("unknown environment override {0}: no such configuration key")]
    UnknownEnv(String),
    /// A default threshold in `[alerts]` is out of range.
    #[error("invalid value for alerts.{field}: {reason}")]
    Threshold {
        /// The field, as in the thresholds document.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A key holds a value outside its range.
    #[error("invalid value for {key}: {reason}")]
    Invalid {
        /// `section.key`.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// The whole configuration, one struct per `config.toml` section.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[server]`: listeners and shutdown.
    pub server: ServerConfig,
    /// `[redis]`: the store.
    pub redis: RedisConfig,
    /// `[buffer]`: batching and the outage backlog.
    pub buffer: BufferConfig,
    /// `[retention]`: how long data lives.
    pub retention: RetentionConfig,
    /// `[ocpp]`: protocol behaviour.
    pub ocpp: OcppConfig,
    /// `[limits]`: protection against misbehaving peers.
    pub limits: LimitsConfig,
    /// `[alerts]`: default thresholds, data-quality limits and the webhook.
    pub alerts: AlertsConfig,
    /// `[admin]`: bearer tokens of the admin API.
    pub admin: AdminConfig,
    /// `[tls]`: certificate and key that turn both listeners into TLS (wss://, https://).
    pub tls: TlsConfig,
    /// `[wal]`: the write-ahead log that makes an acknowledged reading survive a crash.
    pub wal: WalConfig,
    /// `[reads]`: the admin API's read cache.
    pub reads: ReadsConfig,
    /// `[mqtt]`: publication of samples and alerts to an MQTT broker (off by default).
    pub mqtt: MqttConfig,
}

/// `[server]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Where charge points connect (WebSocket, OCPP-J).
    pub ws_addr: String,
    /// Where the admin HTTP API listens.
    pub http_addr: String,
    /// Worker threads per listener; 0 means one per CPU core.
    pub workers: usize,
    /// Longest a graceful shutdown waits for buffers to reach Redis.
    pub shutdown_timeout_secs: u64,
    /// This instance's name in the fleet (owner records, remote calls, `/metrics`); empty
    /// means hostname + ":" + the OCPP listener's port, unique per box and listener.
    pub instance_id: String,
    /// How long the instance's lease in Redis lives unrenewed (renewed every third of it); its
    /// charge points' owner records count while it does, so this is how soon a crashed
    /// instance stops counting as holding them.
    pub instance_lease_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            ws_addr: "0.0.0.0:8080".into(),
            http_addr: "0.0.0.0:8081".into(),
            workers: 0,
            shutdown_timeout_secs: 30,
            instance_id: String::new(),
            instance_lease_secs: 30,
        }
    }
}

/// `[redis]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// One Redis server (`url`) or a Redis Cluster (`urls`).
    pub mode: RedisMode,
    /// `redis://host:port/db`, `rediss://` for TLS, or `redis+unix:///path` (standalone mode).
    pub url: String,
    /// Seed nodes of the cluster (`redis://host:port`), cluster mode; any reachable one is
    /// enough to find the rest, so list several.
    pub urls: Vec<String>,
    /// Connections in the pool.
    pub pool_size: usize,
    /// Connect timeout.
    pub connect_timeout_ms: u64,
    /// Timeout for one command or pipeline.
    pub response_timeout_ms: u64,
    /// First retry delay after a failed write; doubles up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    /// Longest retry delay.
    pub retry_max_ms: u64,
    /// Cluster mode: replicas of each master that must hold a write (`WAIT`) before the writer
    /// counts it as stored; 0 takes the master's word (a failover can then lose the last
    /// milliseconds of writes, which the write-ahead log has already let go).
    pub wait_replicas: u32,
    /// Cluster mode: longest `WAIT` for those replicas.
    pub wait_timeout_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            mode: RedisMode::Standalone,
            url: "redis://127.0.0.1:6379".into(),
            urls: Vec::new(),
            pool_size: 8,
            connect_timeout_ms: 2000,
            response_timeout_ms: 5000,
            retry_initial_ms: 100,
            retry_max_ms: 5000,
            wait_replicas: 0,
            wait_timeout_ms: 1000,
        }
    }
}

/// `redis.mode`: which Redis deployment holds the data.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    /// One server at `redis.url` (with or without replicas behind it).
    Standalone,
    /// A Redis Cluster found from `redis.urls`; several instances may share it.
    Cluster,
}

impl RedisConfig {
    /// Where the pool connects, from `mode` and `url`/`urls`.
    pub fn target(&self) -> actors::redis_pool::RedisTarget {
        match self.mode {
            RedisMode::Standalone => actors::redis_pool::RedisTarget::Standalone(self.url.clone()),
            RedisMode::Cluster => actors::redis_pool::RedisTarget::Cluster(self.urls.clone()),
        }
    }

    /// The address logs and `/ready` name: the URL, or the seed nodes.
    pub fn describe(&self) -> String {
        match self.mode {
            RedisMode::Standalone => self.url.clone(),
            RedisMode::Cluster => format!("cluster {}", self.urls.join(",")),
        }
    }
}

/// `[buffer]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// Samples per station batch.
    pub max_samples: usize,
    /// Longest a sample waits before its batch is written.
    pub max_age_secs: u64,
    /// Samples kept while Redis is away; past this the oldest are dropped and counted.
    pub max_pending_samples: usize,
    /// Recent readings remembered per station to drop retried duplicates.
    pub dedupe_window_samples: usize,
    /// How long each of them is remembered: a retry follows its lost reply within the charge
    /// point's call timeout, and the bound keeps a long session's memory flat.
    pub dedupe_window_secs: u64,
    /// Longest a charge point's latest-values hash lags its raw chunks: the hash is written
    /// coalesced at most this often (and at session end and shutdown) rather than with every
    /// flush, which halves the Redis commands of a busy charge point.
    pub latest_interval_secs: u64,
    /// How long the aggregator keeps a charge point's roll-ups in memory after its first
    /// pending sample before writing them (one script call): longer is cheaper for Redis with
    /// a large fleet, and a crash loses that much of the counts and sums (never register
    /// energy). Charge points fall due one by one, so the writes spread over the interval.
    pub rollup_interval_secs: u64,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            max_samples: 100,
            max_age_secs: 30,
            max_pending_samples: 5_000_000,
            dedupe_window_samples: 4096,
            dedupe_window_secs: 300,
            latest_interval_secs: 10,
            rollup_interval_secs: actors::aggregator::FLUSH_INTERVAL.as_secs(),
        }
    }
}

/// `[reads]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReadsConfig {
    /// Memory bound of the cache of decoded raw hours and roll-up buckets that large API reads
    /// (24 h of a series, 30 days of hourly roll-ups) reuse instead of fetching and decoding
    /// everything again; each use is still checked against Redis (`store::read_cache`). 0 turns
    /// the cache off.
    pub cache_bytes: u64,
    /// How long a large read, once Redis confirmed it over a tracked connection, is answered
    /// from memory while Redis reports no change to the keys it read (client tracking,
    /// `store::tracked_reads`). Changes end it at once and a silent connection within two
    /// seconds (pings), so this only bounds how long a read is trusted at all. 0 asks Redis
    /// at every read. Standalone Redis only; a cluster's reads always ask.
    pub tracked_secs: u64,
}

/// Default of `reads.tracked_secs`.
pub const DEFAULT_TRACKED_SECS: u64 = 60;

/// Default of `reads.cache_bytes`: 64 MiB, about twenty 30-day hourly reads (~3 MB each) or
/// ninety 24 h series reads (~0.7 MB each).
pub const DEFAULT_READ_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Smallest non-zero `reads.cache_bytes`: a smaller cache could not hold the buckets of one
/// hourly read (an entry may take at most a quarter of it).
pub const MIN_READ_CACHE_BYTES: u64 = 1024 * 1024;

impl Default for ReadsConfig {
    fn default() -> Self {
        ReadsConfig {
            cache_bytes: DEFAULT_READ_CACHE_BYTES,
            tracked_secs: DEFAULT_TRACKED_SECS,
        }
    }
}

/// `[retention]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Days raw samples are kept.
    pub raw_days: u64,
    /// Days hourly roll-ups are kept.
    pub hourly_days: u64,
    /// Days daily roll-ups are kept.
    pub daily_days: u64,
    /// Hours the real-time statistics of a charge point outlive its last message.
    pub stats_hours: u64,
    /// Days alert history is kept.
    pub alerts_days: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            raw_days: 7,
            hourly_days: 30,
            daily_days: 365,
            stats_hours: 24,
            alerts_days: 30,
        }
    }
}

/// `[alerts]`: the global default thresholds (the same document as `GET /api/v1/thresholds`),
/// the data-quality limits, and `[alerts.webhook]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// `Power.Active.Import` above this (W, total or sum of phases) raises `high_power`.
    pub power_max_w: f64,
    /// `Temperature` above this (Celsius) raises `high_temperature`.
    pub temperature_max_c: f64,
    /// `Temperature` below this (Celsius) raises `low_temperature`.
    pub temperature_min_c: f64,
    /// Line-to-neutral `Voltage` below this (V) raises `voltage_out_of_range`.
    pub voltage_min_v: f64,
    /// Line-to-neutral `Voltage` above this (V) raises `voltage_out_of_range`.
    pub voltage_max_v: f64,
    /// `Current.Import` per phase above this (A) raises `high_current`.
    pub current_max_a: f64,
    /// An alert clears only when the reading is back inside its threshold by this percentage.
    pub hysteresis_pct: f64,
    /// A sample timestamped more than this far in the future raises `clock_skew`.
    pub max_clock_skew_secs: u64,
    /// `[alerts.webhook]`.
    pub webhook: WebhookConfig,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            power_max_w: 50_000.0,
            temperature_max_c: 70.0,
            temperature_min_c: -10.0,
            voltage_min_v: 207.0,
            voltage_max_v: 253.0,
            current_max_a: 80.0,
            hysteresis_pct: 2.0,
            max_clock_skew_secs: 300,
            webhook: WebhookConfig::default(),
        }
    }
}

/// `[alerts.webhook]`: where alert notifications are POSTed as JSON.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL; empty disables the webhook.
    pub url: String,
    /// Timeout of one delivery attempt.
    pub timeout_ms: u64,
    /// Notifications waiting for delivery; past this the oldest are dropped and counted.
    pub max_queue: usize,
    /// Longest delay between retries of a failed delivery.
    pub retry_max_secs: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: String::new(),
            timeout_ms: 5000,
            max_queue: 10_000,
            retry_max_secs: 60,
        }
    }
}

/// `[ocpp]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OcppConfig {
    /// Heartbeat interval given to charge points at boot.
    pub heartbeat_interval_secs: u32,
    /// How often the server pings an idle connection.
    pub ping_interval_secs: u64,
    /// A connection silent this long (no frame, no pong) is dropped.
    pub idle_timeout_secs: u64,
    /// idTags accepted by Authorize/StartTransaction; empty accepts every idTag.
    pub id_tag_allow_list: Vec<String>,
    /// How long a call to a charge point (TriggerMessage, GetConfiguration,
    /// ChangeConfiguration) waits for its answer; the API answers 504 after it.
    pub call_timeout_secs: u64,
    /// `[ocpp.metering]`: the metering profile set at every boot.
    pub metering: MeteringConfig,
    /// Seconds between MeterValues a charge point is assumed to send during a transaction;
    /// 3x this without one raises `stale_meter_data`.
    pub meter_value_sample_interval: u64,
    /// Whether a charge point with no password set may connect (Basic auth is always required
    /// from one that has a password).
    pub unknown_charge_points: UnknownChargePoints,
    /// The WebSocket subprotocols (OCPP versions) charge points may choose, by name
    /// (`ocpp2.0.1`, `ocpp1.6`); a connection gets the first of its own offers in this list, so
    /// one fleet can be held to one version.
    pub protocols: Vec<String>,
}

impl Default for OcppConfig {
    fn default() -> Self {
        OcppConfig {
            heartbeat_interval_secs: 300,
            ping_interval_secs: 30,
            idle_timeout_secs: 120,
            id_tag_allow_list: Vec::new(),
            call_timeout_secs: 30,
            metering: MeteringConfig::default(),
            meter_value_sample_interval: 60,
            unknown_charge_points: UnknownChargePoints::Accept,
            protocols: vec!["ocpp2.0.1".into(), "ocpp1.6".into()],
        }
    }
}

/// `[ocpp.metering]`: the OCPP metering keys the server sets after every accepted
/// BootNotification where the charge point reports something else.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MeteringConfig {
    /// Whether to read and set the metering keys at boot at all.
    pub enabled: bool,
    /// `MeterValueSampleInterval`: seconds between MeterValues during a transaction.
    pub sample_interval_secs: u32,
    /// `MeterValuesSampledData`: measurands sampled during a transaction.
    pub sampled_data: Vec<String>,
    /// `ClockAlignedDataInterval`: seconds between clock-aligned readings; 0 turns them off.
    pub clock_aligned_interval_secs: u32,
    /// `MeterValuesAlignedData`: clock-aligned measurands.
    pub aligned_data: Vec<String>,
    /// `StopTxnSampledData`: measurands sent with StopTransaction.
    pub stop_txn_sampled_data: Vec<String>,
}

impl Default for MeteringConfig {
    fn default() -> Self {
        let five = [
            "Energy.Active.Import.Register",
            "Power.Active.Import",
            "Voltage",
            "Current.Import",
            "Temperature",
        ];
        MeteringConfig {
            enabled: true,
            sample_interval_secs: 60,
            sampled_data: five.iter().map(|m| (*m).to_owned()).collect(),
            clock_aligned_interval_secs: 900,
            aligned_data: vec!["Energy.Active.Import.Register".to_owned()],
            stop_txn_sampled_data: vec!["Energy.Active.Import.Register".to_owned()],
        }
    }
}

impl MeteringConfig {
    /// The profile the charge point actors apply, `None` when turned off.
    pub fn profile(&self) -> Option<actors::metering::MeteringProfile> {
        self.enabled.then(|| self.to_profile())
    }

    /// The configured default profile, whether or not it is applied (the API shows it).
    pub fn to_profile(&self) -> actors::metering::MeteringProfile {
        actors::metering::MeteringProfile {
            sample_interval_secs: self.sample_interval_secs,
            sampled_data: self.sampled_data.clone(),
            clock_aligned_interval_secs: self.clock_aligned_interval_secs,
            aligned_data: self.aligned_data.clone(),
            stop_txn_sampled_data: self.stop_txn_sampled_data.clone(),
        }
    }

    /// Checks the measurand names.
    fn validate(&self) -> Result<(), ConfigError> {
        let lists = [
            ("ocpp.metering.sampled_data", &self.sampled_data),
            ("ocpp.metering.aligned_data", &self.aligned_data),
            (
                "ocpp.metering.stop_txn_sampled_data",
                &self.stop_txn_sampled_data,
            ),
        ];
        for (key, list) in lists {
            if let Some(bad) = list
                .iter()
                .find(|m| actors::sample::Measurand::parse(m).is_none())
            {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!("{bad:?} is not an OCPP 1.6 measurand"),
                });
            }
        }
        Ok(())
    }
}

/// `[limits]`: bounds on what one peer can cost the server, so a broken or hostile charge point
/// (or anything else that reaches the WebSocket port) cannot hurt the rest of the fleet. Each
/// bound that trips is counted in `ocpp_hostile_closed_total{reason}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest WebSocket message accepted; larger ones close the connection with 1009.
    pub max_frame_bytes: usize,
    /// Most charge points connected at once; further upgrades get 503.
    pub max_connections: usize,
    /// Failed charge point authentications from one address within
    /// `auth_failure_window_secs` after which that address gets 429 until the window ends.
    pub auth_failures_max: u32,
    /// Length of the window `auth_failures_max` counts in.
    pub auth_failure_window_secs: u64,
    /// Sustained WebSocket upgrades per second one source address may make (token bucket
    /// refill); more get 429 before any actor starts or any password is hashed, so a connect
    /// flood costs little more than the TCP accept.
    pub connects_per_address_per_sec: u32,
    /// Upgrades one address may make at once (the bucket's size): it must cover a whole site
    /// behind one NAT (or a cellular carrier's CGNAT) reconnecting after a server restart.
    pub connect_burst: u32,
    /// Longest a new connection may take to deliver its request head (and, with `[tls]`, to
    /// finish the TLS handshake); a connection that connects and then says nothing, or trickles
    /// its headers, is closed after it.
    pub handshake_timeout_secs: u64,
    /// Longest one write to a charge point may wait for room in the connection's outbound queue;
    /// a peer that stops reading for this long is disconnected (its queued frames are dropped).
    pub write_timeout_secs: u64,
    /// Kernel send buffer of every WebSocket connection (SO_SNDBUF, which Linux doubles for its
    /// bookkeeping): with actix-ws's 32-frame queue in front of it, what a peer that never reads
    /// can make the server hold. OCPP messages to a charge point are small.
    pub socket_send_buffer_bytes: usize,
    /// WebSocket control frames (pings and pongs) one connection may send per minute; beyond
    /// that it is closed with 1008 instead of being answered pong for pong.
    pub control_frames_per_minute: u32,
    /// Frames read from one connection and not yet answered; OCPP-J allows a charge point one
    /// outstanding CALL, so a peer past this is flooding and is closed with 1008. Bounds the
    /// read-ahead memory to this many `max_frame_bytes` per connection.
    pub max_inflight_calls: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_frame_bytes: 65536,
            max_connections: 100_000,
            auth_failures_max: 10,
            auth_failure_window_secs: 60,
            connects_per_address_per_sec: 50,
            connect_burst: 1000,
            handshake_timeout_secs: 10,
            write_timeout_secs: 30,
            socket_send_buffer_bytes: 65536,
            control_frames_per_minute: 120,
            max_inflight_calls: 16,
        }
    }
}

impl LimitsConfig {
    /// Checks the bounds: none may be 0 (that would refuse everyone or time out at once).
    fn validate(&self) -> Result<(), ConfigError> {
        if self.max_frame_bytes < 1024 {
            return Err(ConfigError::Invalid {
                key: "limits.max_frame_bytes",
                reason: "must be at least 1024".into(),
            });
        }
        positive("limits.max_connections", self.max_connections as u64)?;
        positive(
            "limits.connects_per_address_per_sec",
            u64::from(self.connects_per_address_per_sec),
        )?;
        positive("limits.connect_burst", u64::from(self.connect_burst))?;
        positive("limits.handshake_timeout_secs", self.handshake_timeout_secs)?;
        positive("limits.write_timeout_secs", self.write_timeout_secs)?;
        if self.socket_send_buffer_bytes < 4096 {
            return Err(ConfigError::Invalid {
                key: "limits.socket_send_buffer_bytes",
                reason: "must be at least 4096".into(),
            });
        }
        positive(
            "limits.control_frames_per_minute",
            u64::from(self.control_frames_per_minute),
        )?;
        positive("limits.max_inflight_calls", self.max_inflight_calls as u64)
    }
}

/// `ocpp.unknown_charge_points`: what happens to a charge point that has no password set.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UnknownChargePoints {
    /// Let it in without credentials (first-run default, so a new fleet can connect at once).
    #[default]
    Accept,
    /// Refuse it with 401: only charge points with a password get in.
    Reject,
}

/// `[admin]`: who may use the admin API, and whether the web dashboard is served with it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Bearer tokens accepted on every route but `/health`, `/ready`, `/metrics` and the
    /// dashboard's files. Empty: the API is open on a loopback `server.http_addr`, and a token
    /// is generated at start (and logged once) on any other address.
    pub tokens: Vec<String>,
    /// Bearer token `/metrics` requires (an admin token works too); empty: `/metrics` is open.
    pub metrics_token: String,
    /// Whether the admin listener serves the web dashboard at `/` and `/dashboard/*`; off for
    /// installations that want the JSON API alone.
    pub dashboard: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            tokens: Vec::new(),
            metrics_token: String::new(),
            dashboard: true,
        }
    }
}

/// `[tls]`: PEM files; `cert` and `key` both set turn both listeners into TLS, both empty leave
/// them plain. `client_ca` adds client certificates on the charge point listener only.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Certificate chain (PEM), leaf first.
    pub cert: String,
    /// Private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// CA bundle (PEM) that signs charge point certificates. Set: the charge point listener
    /// refuses any TLS client without a valid certificate from it, and the certificate's subject
    /// CN must be the charge point id (OCPP 1.6 security profile 3); the admin listener never asks
    /// for one. Empty (default): no client certificates (profiles 1 and 2).
    pub client_ca: String,
}

/// `[wal]`: the local write-ahead log every MeterValues, StartTransaction and StopTransaction
/// reaches before its CALLRESULT goes out, so "answered" means "durable" even on SIGKILL.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WalConfig {
    /// Off turns the acknowledgement back into "in memory" (a crash loses what the buffers
    /// hold); only for benchmarks and throwaway set-ups.
    pub enabled: bool,
    /// Directory of the segments; created when missing, one process at a time (locked).
    pub dir: String,
    /// When the log is forced to disk: `batch` (one fsync per group commit), `always` (one
    /// per record, no grouping) or `never` (the OS decides: survives a process crash, not a
    /// power cut).
    pub fsync: WalFsync,
    /// How long a group commit collects records after the first one before one write and one
    /// fsync cover them all.
    pub group_commit_ms: u64,
    /// A segment is closed and a new one opened past this size; closed segments are deleted
    /// once Redis holds everything in them.
    pub segment_bytes: u64,
    /// Most bytes the log may occupy on disk (0: no limit but the disk's); past it the log
    /// behaves as a full disk: `/ready` fails and MeterValues get a CALLERROR InternalError.
    pub max_disk_bytes: u64,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            enabled: true,
            dir: "./data/wal".into(),
            fsync: WalFsync::Batch,
            group_commit_ms: 2,
            segment_bytes: 64 * 1024 * 1024,
            max_disk_bytes: 0,
        }
    }
}

/// `wal.fsync`: how hard the log insists on the disk.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WalFsync {
    /// One fsync per group commit (the default).
    #[default]
    Batch,
    /// One write and fsync per record.
    Always,
    /// Written to the OS, never forced: safe against a process crash, not a power cut.
    Never,
}

impl Config {
    /// The write-ahead log's settings, `None` when `wal.enabled` is false.
    pub fn wal_settings(&self) -> Option<actors::wal::WalSettings> {
        let wal = &self.wal;
        wal.enabled.then(|| actors::wal::WalSettings {
            dir: std::path::PathBuf::from(&wal.dir),
            fsync: match wal.fsync {
                WalFsync::Batch => actors::wal::FsyncPolicy::Batch,
                WalFsync::Always => actors::wal::FsyncPolicy::Always,
                WalFsync::Never => actors::wal::FsyncPolicy::Never,
            },
            group_commit: std::time::Duration::from_millis(wal.group_commit_ms),
            segment_bytes: wal.segment_bytes,
            max_disk_bytes: wal.max_disk_bytes,
        })
    }
}

/// Shortest admin or metrics token accepted, so a guessable one is refused at start.
pub const MIN_TOKEN_CHARS: usize = 16;

impl Config {
    /// Checks `[admin]`, `[tls]` and the authentication limits.
    fn validate_security(&self) -> Result<(), ConfigError> {
        let short = self
            .admin
            .tokens
            .iter()
            .any(|t| t.chars().count() < MIN_TOKEN_CHARS || t.trim() != t);
        if short {
            return Err(ConfigError::Invalid {
                key: "admin.tokens",
                reason: format!(
                    "every token must be at least {MIN_TOKEN_CHARS} characters without surrounding spaces"
                ),
            });
        }
        let metrics = &self.admin.metrics_token;
        if !metrics.is_empty()
            && (metrics.chars().count() < MIN_TOKEN_CHARS || metrics.trim() != metrics)
        {
            return Err(ConfigError::Invalid {
                key: "admin.metrics_token",
                reason: format!(
                    "must be empty or at least {MIN_TOKEN_CHARS} characters without surrounding spaces"
                ),
            });
        }
        if self.tls.cert.is_empty() != self.tls.key.is_empty() {
            return Err(ConfigError::Invalid {
                key: "tls.cert",
                reason: "tls.cert and tls.key must be set together".into(),
            });
        }
        if !self.tls.client_ca.is_empty() && self.tls.cert.is_empty() {
            return Err(ConfigError::Invalid {
                key: "tls.client_ca",
                reason: "needs tls.cert and tls.key: client certificates exist only over TLS"
                    .into(),
            });
        }
        positive(
            "limits.auth_failures_max",
            u64::from(self.limits.auth_failures_max),
        )?;
        positive(
            "limits.auth_failure_window_secs",
            self.limits.auth_failure_window_secs,
        )
    }

    /// Loads `path` (or the defaults when `path` is `None`), then applies the environment.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?,
            None => String::new(),
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        apply_env(&mut table, env)?;
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges that the types cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn addr(key: &'static str, value: &str) -> Result<(), ConfigError> {
            value
                .parse::<SocketAddr>()
                .map(|_| ())
                .map_err(|e| ConfigError::Invalid {
                    key,
                    reason: format!("{value:?} is not a host:port socket address ({e})"),
                })
        }
        addr("server.ws_addr", &self.server.ws_addr)?;
        addr("server.http_addr", &self.server.http_addr)?;
        let id = &self.server.instance_id;
        if id.len() > 100
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'))
        {
            return Err(ConfigError::Invalid {
                key: "server.instance_id",
                reason: format!(
                    "{id:?} must be at most 100 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
                ),
            });
        }
        positive(
            "server.instance_lease_secs",
            self.server.instance_lease_secs,
        )?;
        let url = &self.redis.url;
        if !["redis://", "rediss://", "redis+unix://", "unix://"]
            .iter()
            .any(|scheme| url.starts_with(scheme))
        {
            return Err(ConfigError::Invalid {
                key: "redis.url",
                reason: format!("{url:?} must start with redis://, rediss:// or redis+unix://"),
            });
        }
        if self.redis.mode == RedisMode::Cluster {
            if self.redis.urls.is_empty() {
                return Err(ConfigError::Invalid {
                    key: "redis.urls",
                    reason: "redis.mode = \"cluster\" needs at least one seed node".into(),
                });
            }
            if let Some(bad) = self.redis.urls.iter().find(|u| {
                !["redis://", "rediss://"]
                    .iter()
                    .any(|scheme| u.starts_with(scheme))
            }) {
                return Err(ConfigError::Invalid {
                    key: "redis.urls",
                    reason: format!("{bad:?} must start with redis:// or rediss://"),
                });
            }
        }
        positive("redis.pool_size", self.redis.pool_size as u64)?;
        positive("redis.wait_timeout_ms", self.redis.wait_timeout_ms)?;
        positive("redis.connect_timeout_ms", self.redis.connect_timeout_ms)?;
        positive("redis.response_timeout_ms", self.redis.response_timeout_ms)?;
        positive("redis.retry_initial_ms", self.redis.retry_initial_ms)?;
        if self.redis.retry_max_ms < self.redis.retry_initial_ms {
            return Err(ConfigError::Invalid {
                key: "redis.retry_max_ms",
                reason: "must be at least redis.retry_initial_ms".into(),
            });
        }
        positive("buffer.max_samples", self.buffer.max_samples as u64)?;
        positive("buffer.max_age_secs", self.buffer.max_age_secs)?;
        if self.buffer.max_pending_samples < self.buffer.max_samples {
            return Err(ConfigError::Invalid {
                key: "buffer.max_pending_samples",
                reason: "must be at least buffer.max_samples".into(),
            });
        }
        positive(
            "buffer.latest_interval_secs",
            self.buffer.latest_interval_secs,
        )?;
        positive(
            "buffer.rollup_interval_secs",
            self.buffer.rollup_interval_secs,
        )?;
        positive("retention.raw_days", self.retention.raw_days)?;
        let cache = self.reads.cache_bytes;
        if cache != 0 && cache < MIN_READ_CACHE_BYTES {
            return Err(ConfigError::Invalid {
                key: "reads.cache_bytes",
                reason: format!("{cache} must be 0 (no cache) or at least {MIN_READ_CACHE_BYTES}"),
            });
        }
        positive(
            "ocpp.heartbeat_interval_secs",
            u64::from(self.ocpp.heartbeat_interval_secs),
        )?;
        positive("ocpp.ping_interval_secs", self.ocpp.ping_interval_secs)?;
        if self.ocpp.idle_timeout_secs <= self.ocpp.ping_interval_secs {
            return Err(ConfigError::Invalid {
                key: "ocpp.idle_timeout_secs",
                reason: "must be longer than ocpp.ping_interval_secs".into(),
            });
        }
        self.limits.validate()?;
        positive("retention.hourly_days", self.retention.hourly_days)?;
        positive("retention.daily_days", self.retention.daily_days)?;
        positive("retention.stats_hours", self.retention.stats_hours)?;
        positive("retention.alerts_days", self.retention.alerts_days)?;
        positive(
            "ocpp.meter_value_sample_interval",
            self.ocpp.meter_value_sample_interval,
        )?;
        positive("ocpp.call_timeout_secs", self.ocpp.call_timeout_secs)?;
        self.validate_protocols()?;
        self.ocpp.metering.validate()?;
        if self.wal.enabled && self.wal.dir.trim().is_empty() {
            return Err(ConfigError::Invalid {
                key: "wal.dir",
                reason: "must name a directory while wal.enabled is true".into(),
            });
        }
        if self.wal.group_commit_ms > 1000 {
            return Err(ConfigError::Invalid {
                key: "wal.group_commit_ms",
                reason: "must be at most 1000 (every acknowledgement waits for it)".into(),
            });
        }
        if self.wal.segment_bytes < 64 * 1024 {
            return Err(ConfigError::Invalid {
                key: "wal.segment_bytes",
                reason: "must be at least 65536".into(),
            });
        }
        if self.wal.max_disk_bytes != 0 && self.wal.max_disk_bytes < self.wal.segment_bytes {
            return Err(ConfigError::Invalid {
                key: "wal.max_disk_bytes",
                reason: "must be 0 (no limit) or at least wal.segment_bytes".into(),
            });
        }
        self.validate_security()?;
        self.mqtt.validate()?;
        self.validate_alerts()
    }

    fn validate_alerts(&self) -> Result<(), ConfigError> {
        // The same rules as a thresholds document PUT through the API.
        self.alert_thresholds()
            .validate()
            .map_err(|e| ConfigError::Threshold {
                field: e.field,
                reason: e.reason,
            })?;
        let a = &self.alerts;
        let bad = |key: &'static str, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.into(),
            })
        };
        let url = &a.webhook.url;
        let http = url.starts_with("http://") || url.starts_with("https://");
        if !url.is_empty() && !http {
            return bad("alerts.webhook.url", "must be empty or an http(s):// URL");
        }
        positive("alerts.webhook.timeout_ms", a.webhook.timeout_ms)?;
        positive("alerts.webhook.max_queue", a.webhook.max_queue as u64)?;
        positive("alerts.webhook.retry_max_secs", a.webhook.retry_max_secs)?;
        Ok(())
    }

    /// `ocpp.protocols`: at least one, each a version this server speaks, none twice.
    fn validate_protocols(&self) -> Result<(), ConfigError> {
        let list = &self.ocpp.protocols;
        let invalid = |reason: String| ConfigError::Invalid {
            key: "ocpp.protocols",
            reason,
        };
        if list.is_empty() {
            return Err(invalid("must name at least one subprotocol".into()));
        }
        for (i, name) in list.iter().enumerate() {
            if crate::ocpp::Protocol::parse(name).is_none() {
                return Err(invalid(format!(
                    "{name:?} is not a subprotocol this server speaks (ocpp2.0.1, ocpp1.6)"
                )));
            }
            if list[..i].contains(name) {
                return Err(invalid(format!("{name:?} is listed twice")));
            }
        }
        Ok(())
    }

    /// `ocpp.protocols` as versions, in the configured order (validated: every name parses).
    pub fn protocols(&self) -> Vec<crate::ocpp::Protocol> {
        self.ocpp
            .protocols
            .iter()
            .filter_map(|name| crate::ocpp::Protocol::parse(name))
            .collect()
    }

    /// The idTag allow-list in the form the actors use (`None`: accept all).
    pub fn id_tag_allow_list(&self) -> Option<HashSet<String>> {
        let list = &self.ocpp.id_tag_allow_list;
        (!list.is_empty()).then(|| list.iter().cloned().collect())
    }

    /// The instance id: `server.instance_id`, or hostname + ":" + `ws_port` (the OCPP
    /// listener's bound port) when that is empty.
    pub fn instance_id(&self, ws_port: u16) -> String {
        if !self.server.instance_id.is_empty() {
            return self.server.instance_id.clone();
        }
        let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|path| std::fs::read_to_string(path).ok())
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".to_owned());
        let host: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        format!("{host}:{ws_port}")
    }

    /// `server.shutdown_timeout_secs` as a duration.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.server.shutdown_timeout_secs)
    }

    /// `[alerts]` as the thresholds document the alert rules and the API use.
    pub fn alert_thresholds(&self) -> actors::exchange::Thresholds {
        let a = &self.alerts;
        actors::exchange::Thresholds {
            power_max_w: a.power_max_w,
            temperature_max_c: a.temperature_max_c,
            temperature_min_c: a.temperature_min_c,
            voltage_min_v: a.voltage_min_v,
            voltage_max_v: a.voltage_max_v,
            current_max_a: a.current_max_a,
            hysteresis_pct: a.hysteresis_pct,
        }
    }
}

/// `[mqtt]`: every MeterValues' normalised samples and every alert raise and clear published,
/// retained with QoS 1, to an MQTT broker, with Home Assistant discovery (see `crate::mqtt`).
/// Its `Debug` hides the password (`--check-config` prints the configuration).
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// `mqtt://host[:port]` (port 1883 by default); empty turns publication off.
    pub url: String,
    /// MQTT client id; empty: `ocpp-meter-` + the instance id, so instances sharing a broker
    /// do not disconnect each other.
    pub client_id: String,
    /// User name for the broker; empty connects anonymously.
    pub username: String,
    /// Password for the broker (never logged).
    pub password: String,
    /// First level of the topics `{topic_prefix}/{cp}/meter` and `{topic_prefix}/{cp}/alert`.
    pub topic_prefix: String,
    /// Home Assistant's discovery prefix; empty sends no discovery messages.
    pub discovery_prefix: String,
    /// Messages waiting for the broker at most (a broker that is down or slow); past this the
    /// oldest are dropped and counted in `ocpp_mqtt_dropped_total`.
    pub max_queue: usize,
    /// MQTT keep-alive: a ping goes to the broker this often, and one still unanswered at the
    /// next drops the connection, so a broker that vanished without closing it is noticed
    /// within twice this.
    pub keep_alive_secs: u64,
    /// Longest wait between reconnection attempts (from 100 ms, doubling).
    pub reconnect_max_secs: u64,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: String::new(),
            client_id: String::new(),
            username: String::new(),
            password: String::new(),
            topic_prefix: "ocpp-meter".into(),
            discovery_prefix: "homeassistant".into(),
            max_queue: 10_000,
            keep_alive_secs: 30,
            reconnect_max_secs: 30,
        }
    }
}

impl std::fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConfig")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("topic_prefix", &self.topic_prefix)
            .field("discovery_prefix", &self.discovery_prefix)
            .field("max_queue", &self.max_queue)
            .field("keep_alive_secs", &self.keep_alive_secs)
            .field("reconnect_max_secs", &self.reconnect_max_secs)
            .finish()
    }
}

/// A secret as `Debug` shows it: whether it is set, never its text.
fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() {
        ""
    } else {
        "<hidden>"
    }
}

impl MqttConfig {
    /// Checks the URL, the topic prefixes and the bounds.
    fn validate(&self) -> Result<(), ConfigError> {
        if !self.url.is_empty() {
            crate::mqtt::parse_url(&self.url).map_err(|e| ConfigError::Invalid {
                key: "mqtt.url",
                reason: e.to_string(),
            })?;
        }
        for (key, prefix, may_be_empty) in [
            ("mqtt.topic_prefix", &self.topic_prefix, false),
            ("mqtt.discovery_prefix", &self.discovery_prefix, true),
        ] {
            let empty_ok = may_be_empty && prefix.is_empty();
            if !empty_ok
                && (prefix.is_empty()
                    || prefix.starts_with('/')
                    || prefix.ends_with('/')
                    || prefix.contains(['+', '#', '\0']))
            {
                return Err(ConfigError::Invalid {
                    key,
                    reason: format!(
                        "{prefix:?} must be topic levels without '+', '#' or a leading or trailing '/'"
                    ),
                });
            }
        }
        positive("mqtt.max_queue", self.max_queue as u64)?;
        positive("mqtt.keep_alive_secs", self.keep_alive_secs)?;
        if self.keep_alive_secs > u64::from(u16::MAX) {
            return Err(ConfigError::Invalid {
                key: "mqtt.keep_alive_secs",
                reason: "must be at most 65535 (MQTT's limit)".into(),
            });
        }
        positive("mqtt.reconnect_max_secs", self.reconnect_max_secs)
    }

    /// The publisher's settings, `None` when `url` is empty; `instance_id` names the client
    /// when `client_id` is empty.
    pub fn settings(&self, instance_id: &str) -> Option<crate::mqtt::MqttSettings> {
        let (host, port) = crate::mqtt::parse_url(&self.url).ok()?;
        Some(crate::mqtt::MqttSettings {
            host,
            port,
            client_id: if self.client_id.is_empty() {
                format!("ocpp-meter-{instance_id}")
            } else {
                self.client_id.clone()
            },
            username: self.username.clone(),
            password: self.password.clone(),
            topic_prefix: self.topic_prefix.clone(),
            discovery_prefix: self.discovery_prefix.clone(),
            max_queue: self.max_queue,
            keep_alive: Duration::from_secs(self.keep_alive_secs),
            reconnect_max: Duration::from_secs(self.reconnect_max_secs),
        })
    }
}

/// The sections, so `OCPP_METER_REDIS_URL` can be split into `redis` + `url` even though keys
/// contain underscores.
const SECTIONS: &[&str] = &[
    "server",
    "redis",
    "buffer",
    "retention",
    "ocpp",
    "limits",
    "alerts",
    "admin",
    "tls",
    "wal",
    "reads",
    "mqtt",
];

/// Tables nested in a section, so `OCPP_METER_ALERTS_WEBHOOK_URL` reaches `[alerts.webhook] url`.
const NESTED: &[(&str, &str)] = &[("alerts", "webhook"), ("ocpp", "metering")];

/// Applies `OCPP_METER_<SECTION>_<KEY>` variables. A value is read as TOML (numbers, booleans,
/// arrays) and taken as a plain string when it is not valid TOML, so `OCPP_METER_REDIS_URL=redis://x`
/// needs no quoting.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let Some((section, key)) = SECTIONS.iter().find_map(|section| {
            rest.strip_prefix(section)
                .and_then(|r| r.strip_prefix('_'))
                .map(|key| (*section, key.to_owned()))
        }) else {
            return Err(ConfigError::UnknownEnv(name));
        };
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.clone()));
        let nested = NESTED.iter().find_map(|(outer, inner)| {
            (*outer == section)
                .then(|| key.strip_prefix(inner).and_then(|k| k.strip_prefix('_')))
                .flatten()
                .map(|k| (*inner, k.to_owned()))
        });
        let mut target = table_at(table, section)?;
        let key = match nested {
            Some((inner, rest)) => {
                target = table_at(target, inner)?;
                rest
            }
            None => key,
        };
        target.insert(key, value);
    }
    Ok(())
}

/// Refuses 0 for keys where 0 would disable something essential or divide by zero.
fn positive(key: &'static str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::Invalid {
            key,
            reason: "must be greater than 0".into(),
        });
    }
    Ok(())
}

/// The sub-table `name` of `table`, created when missing.
fn table_at<'a>(
    table: &'a mut toml::Table,
    name: &str,
) -> Result<&'a mut toml::Table, ConfigError> {
    match table
        .entry(name.to_owned())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
    {
        toml::Value::Table(inner) => Ok(inner),
        _ => Err(ConfigError::Parse(format!("{name} is not a table"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml")
    }

    #[test]
    fn shipped_config_equals_the_defaults() {
        let loaded = Config::load(Some(&shipped()), Vec::new()).unwrap();
        assert_eq!(loaded, Config::default());
    }

    #[test]
    fn environment_overrides_the_file() {
        let env = vec![
            (
                "OCPP_METER_REDIS_URL".into(),
                "redis://10.0.0.1:6380".into(),
            ),
            (
                "OCPP_METER_SERVER_HTTP_ADDR".into(),
                "127.0.0.1:9000".into(),
            ),
            ("OCPP_METER_BUFFER_MAX_SAMPLES".into(), "50".into()),
            (
                "OCPP_METER_OCPP_ID_TAG_ALLOW_LIST".into(),
                r#"["A", "B"]"#.into(),
            ),
            ("OCPP_METER_ALERTS_POWER_MAX_W".into(), "22000".into()),
            (
                "OCPP_METER_ALERTS_WEBHOOK_URL".into(),
                "http://hooks.example/alerts".into(),
            ),
            ("UNRELATED".into(), "x".into()),
        ];
        let config = Config::load(Some(&shipped()), env).unwrap();
        assert_eq!(config.redis.url, "redis://10.0.0.1:6380");
        assert_eq!(config.server.http_addr, "127.0.0.1:9000");
        assert_eq!(config.buffer.max_samples, 50);
        assert_eq!(config.ocpp.id_tag_allow_list, vec!["A", "B"]);
        assert_eq!(config.alerts.power_max_w, 22000.0);
        assert_eq!(config.alerts.webhook.url, "http://hooks.example/alerts");
    }

    #[test]
    fn protocols_are_listed_checked_and_overridable() {
        use crate::ocpp::Protocol;
        assert_eq!(
            Config::default().protocols(),
            vec![Protocol::Ocpp201, Protocol::Ocpp16]
        );
        let env = vec![(
            "OCPP_METER_OCPP_PROTOCOLS".to_owned(),
            r#"["ocpp1.6"]"#.to_owned(),
        )];
        let config = Config::load(Some(&shipped()), env).unwrap();
        assert_eq!(config.protocols(), vec![Protocol::Ocpp16]);
        for bad in [r#"[]"#, r#"["ocpp1.5"]"#, r#"["ocpp1.6", "ocpp1.6"]"#] {
            let env = vec![("OCPP_METER_OCPP_PROTOCOLS".to_owned(), bad.to_owned())];
            let err = Config::load(Some(&shipped()), env).unwrap_err();
            assert!(err.to_string().contains("ocpp.protocols"), "{bad}: {err}");
        }
    }

    #[test]
    fn mqtt_comes_from_the_environment_and_is_checked() {
        assert!(
            Config::default().mqtt.settings("i:1").is_none(),
            "off by default"
        );
        let env = vec![
            ("OCPP_METER_MQTT_URL".into(), "mqtt://10.0.0.9".into()),
            ("OCPP_METER_MQTT_MAX_QUEUE".into(), "50".into()),
            ("OCPP_METER_MQTT_DISCOVERY_PREFIX".into(), r#""""#.into()),
            ("OCPP_METER_MQTT_PASSWORD".into(), "s3cret-pw".into()),
        ];
        let config = Config::load(Some(&shipped()), env).unwrap();
        assert_eq!(config.mqtt.password, "s3cret-pw");
        assert!(
            !format!("{config:?}").contains("s3cret-pw"),
            "--check-config hides it"
        );
        let settings = config.mqtt.settings("host:8080").unwrap();
        assert_eq!((settings.host.as_str(), settings.port), ("10.0.0.9", 1883));
        assert_eq!(settings.client_id, "ocpp-meter-host:8080");
        assert_eq!(settings.topic_prefix, "ocpp-meter");
        assert_eq!(settings.discovery_prefix, "");
        assert_eq!(settings.max_queue, 50);
        for (name, value, key) in [
            ("OCPP_METER_MQTT_URL", "mqtts://b:8883", "mqtt.url"),
            ("OCPP_METER_MQTT_URL", "mqtt://b:99999", "mqtt.url"),
            ("OCPP_METER_MQTT_TOPIC_PREFIX", "a/+/b", "mqtt.topic_prefix"),
            ("OCPP_METER_MQTT_TOPIC_PREFIX", r#""""#, "mqtt.topic_prefix"),
            (
                "OCPP_METER_MQTT_DISCOVERY_PREFIX",
                "ha/",
                "mqtt.discovery_prefix",
            ),
            ("OCPP_METER_MQTT_MAX_QUEUE", "0", "mqtt.max_queue"),
            (
                "OCPP_METER_MQTT_KEEP_ALIVE_SECS",
                "70000",
                "mqtt.keep_alive_secs",
            ),
            (
                "OCPP_METER_MQTT_RECONNECT_MAX_SECS",
                "0",
                "mqtt.reconnect_max_secs",
            ),
        ] {
            let error = Config::load(None, vec![(name.into(), value.into())])
                .unwrap_err()
                .to_string();
            assert!(error.contains(key), "{name}={value}: {error}");
        }
    }

    #[test]
    fn cluster_mode_and_seed_nodes_come_from_the_environment_and_are_checked() {
        let env = vec![
            ("OCPP_METER_REDIS_MODE".into(), "cluster".into()),
            (
                "OCPP_METER_REDIS_URLS".into(),
                r#"["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]"#.into(),
            ),
        ];
        let config = Config::load(Some(&shipped()), env).unwrap();
        assert_eq!(config.redis.mode, RedisMode::Cluster);
        assert_eq!(
            config.redis.target(),
            actors::redis_pool::RedisTarget::Cluster(vec![
                "redis://10.0.0.1:7000".into(),
                "redis://10.0.0.2:7000".into()
            ])
        );
        assert_eq!(Config::default().redis.mode, RedisMode::Standalone);

        let env = vec![("OCPP_METER_REDIS_MODE".into(), "cluster".into())];
        let error = Config::load(None, env).unwrap_err().to_string();
        assert!(error.contains("redis.urls"), "{error}");
        let env = vec![
            ("OCPP_METER_REDIS_MODE".into(), "cluster".into()),
            (
                "OCPP_METER_REDIS_URLS".into(),
                r#"["10.0.0.1:7000"]"#.into(),
            ),
        ];
        let error = Config::load(None, env).unwrap_err().to_string();
        assert!(error.contains("redis.urls"), "{error}");
        let env = vec![("OCPP_METER_REDIS_MODE".into(), "sharded".into())];
        assert!(Config::load(None, env).is_err());
    }

    #[test]
    fn security_keys_come_from_the_environment_and_are_checked() {
        let env = vec![
            (
                "OCPP_METER_ADMIN_TOKENS".into(),
                r#"["0123456789abcdef-one", "0123456789abcdef-two"]"#.into(),
            ),
            (
                "OCPP_METER_OCPP_UNKNOWN_CHARGE_POINTS".into(),
                "reject".into(),
            ),
            ("OCPP_METER_TLS_CERT".into(), "/etc/ocpp/cert.pem".into()),
            ("OCPP_METER_TLS_KEY".into(), "/etc/ocpp/key.pem".into()),
        ];
        let config = Config::load(Some(&shipped()), env).unwrap();
        assert_eq!(config.admin.tokens.len(), 2);
        assert_eq!(
            config.ocpp.unknown_charge_points,
            UnknownChargePoints::Reject
        );
        assert_eq!(config.tls.key, "/etc/ocpp/key.pem");
        assert!(config.admin.dashboard, "the dashboard is on by default");
        let env = vec![("OCPP_METER_ADMIN_DASHBOARD".into(), "false".into())];
        assert!(!Config::load(Some(&shipped()), env).unwrap().admin.dashboard);

        let env = vec![("OCPP_METER_ADMIN_TOKENS".into(), r#"["short"]"#.into())];
        let error = Config::load(None, env).unwrap_err().to_string();
        assert!(error.contains("admin.tokens"), "{error}");
        let env = vec![("OCPP_METER_TLS_CERT".into(), "/etc/ocpp/cert.pem".into())];
        let error = Config::load(None, env).unwrap_err().to_string();
        assert!(error.contains("tls.cert"), "{error}");
        let env = vec![(
            "OCPP_METER_OCPP_UNKNOWN_CHARGE_POINTS".into(),
            "maybe".into(),
        )];
        assert!(Config::load(None, env).is_err());
    }

    #[test]
    fn client_ca_comes_from_the_environment_and_needs_cert_and_key() {
        let env = vec![
            ("OCPP_METER_TLS_CERT".into(), "/etc/ocpp/cert.pem".into()),
            ("OCPP_METER_TLS_KEY".into(), "/etc/ocpp/key.pem".into()),
            ("OCPP_METER_TLS_CLIENT_CA".into(), "/etc/ocpp/ca.pem".into()),
        ];
        let config = Config::load(Some(&shipped()), env).unwrap();
        assert_eq!(config.tls.client_ca, "/etc/ocpp/ca.pem");
        assert!(
            Config::default().tls.client_ca.is_empty(),
            "profile 3 is off by default"
        );

        let env = vec![("OCPP_METER_TLS_CLIENT_CA".into(), "/etc/ocpp/ca.pem".into())];
        let error = Config::load(None, env).unwrap_err().to_string();
        assert!(error.contains("tls.client_ca"), "{error}");
        let env = vec![
            ("OCPP_METER_TLS_CERT".into(), "/etc/ocpp/cert.pem".into()),
            ("OCPP_METER_TLS_CLIENT_CA".into(), "/etc/ocpp/ca.pem".into()),
        ];
        let error = Config::load(None, env).unwrap_err().to_string();
        assert!(error.contains("tls.cert"), "{error}");
    }

    #[test]
    fn instance_id_comes_from_the_environment_or_the_host_and_port() {
        let env = vec![(
            "OCPP_METER_SERVER_INSTANCE_ID".into(),
            "meter-b:8080".into(),
        )];
        let config = Config::load(Some(&shipped()), env).unwrap();
        assert_eq!(config.instance_id(9), "meter-b:8080");
        let default = Config::default().instance_id(8080);
        assert!(default.ends_with(":8080") && default.len() > 5, "{default}");
        let env = vec![("OCPP_METER_SERVER_INSTANCE_ID".into(), "a{b}".into())];
        let error = Config::load(None, env).unwrap_err().to_string();
        assert!(error.contains("server.instance_id"), "{error}");
    }

    #[test]
    fn read_cache_bound_comes_from_the_environment_and_is_checked() {
        let env = vec![("OCPP_METER_READS_CACHE_BYTES".into(), "0".into())];
        let config = Config::load(Some(&shipped()), env).unwrap();
        assert_eq!(config.reads.cache_bytes, 0, "0 turns the cache off");
        assert_eq!(
            Config::default().reads.cache_bytes,
            DEFAULT_READ_CACHE_BYTES
        );
        let env = vec![("OCPP_METER_READS_CACHE_BYTES".into(), "1000".into())];
        let error = Config::load(None, env).unwrap_err().to_string();
        assert!(error.contains("reads.cache_bytes"), "{error}");
    }

    #[test]
    fn errors_name_the_key() {
        let env = vec![("OCPP_METER_ALERTS_TEMPERATURE_MIN_C".into(), "80".into())];
        let error = Config::load(None, env).unwrap_err().to_string();
        assert!(error.contains("alerts.temperature_min_c"), "{error}");

        let env = vec![("OCPP_METER_BUFFER_MAX_SAMPLES".into(), "0".into())];
        let error = Config::load(None, env).unwrap_err().to_string();
        assert!(error.contains("buffer.max_samples"), "{error}");

        let env = vec![("OCPP_METER_SERVER_WS_ADDR".into(), "nowhere".into())];
        let error = Config::load(None, env).unwrap_err().to_string();
        assert!(error.contains("server.ws_addr"), "{error}");

        let env = vec![("OCPP_METER_REDIS_COLOUR".into(), "blue".into())];
        let error = Config::load(None, env).unwrap_err().to_string();
        assert!(error.contains("colour"), "{error}");

        let env = vec![("OCPP_METER_NOPE_X".into(), "1".into())];
        let error = Config::load(None, env).unwrap_err().to_string();
        assert!(error.contains("OCPP_METER_NOPE_X"), "{error}");
    }
}
