//! `ChargePointActor`: one per connected charge point. It owns what the server knows about the
//! station while it is online (boot info, connector statuses, open transactions, latest readings),
//! answers its requests, and hands every sample to the station's buffer and to the live stream.
//!
//! The requests and replies below are the protocol-agnostic form of what a charge point says;
//! `src/ocpp/` translates OCPP-J frames into them and back.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use futures_channel::mpsc::UnboundedSender;

use crate::boot_metering::BootMetering;
use crate::buffer::{BufferOwner, BufferSettings, Outlet, StationBuffer};
use crate::counters::IngestCounters;
use crate::dedupe::RecentSamples;
use crate::exchange::{BootInfo, OpenTransaction, SessionEvent, StatusReport, StoreOp};
use crate::id::ChargePointId;
use crate::latest::LatestSamples;
use crate::metering::MeteringProfile;
use crate::registry::Registry;
use crate::sample::{Measurand, Readings, Sample};
use crate::server_call::{Call, CallError, CallQueue, CallResult, ServerCall};
use crate::stats::{ChargePointStats, LiveStats, PERSIST_INTERVAL};
use crate::stream::{SampleBatch, SampleStream, SessionNotice};
use crate::txn_ids::TransactionIds;
use crate::wal::{Durable, Wal};
use crate::writer::{WriteBatch, WriterStats};

/// A request from a charge point, already decoded and checked by the protocol edge.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// BootNotification.
    Boot(BootInfo),
    /// Heartbeat.
    Heartbeat,
    /// Authorize an idTag.
    Authorize {
        /// The token presented at the charge point.
        id_tag: String,
    },
    /// StartTransaction.
    StartTransaction {
        /// Connector the session runs on (1..).
        connector_id: u32,
        /// The token that started it.
        id_tag: String,
        /// Energy register at start, in Wh.
        meter_start: i64,
        /// When it started.
        timestamp: DateTime<Utc>,
        /// Reservation it consumes, if any.
        reservation_id: Option<i32>,
    },
    /// StopTransaction, with its optional `transactionData` readings.
    StopTransaction {
        /// The id the server assigned at start.
        transaction_id: i32,
        /// The token that stopped it, if any.
        id_tag: Option<String>,
        /// Energy register at stop, in Wh.
        meter_stop: i64,
        /// When it stopped.
        timestamp: DateTime<Utc>,
        /// OCPP `Reason` (Local, Remote, EVDisconnected, ...).
        reason: Option<String>,
        /// Readings sent along (`transactionData`).
        readings: Readings,
    },
    /// MeterValues.
    MeterValues {
        /// Connector the readings belong to (0 = the whole charge point).
        connector_id: u32,
        /// Transaction they belong to, if the charge point named one.
        transaction_id: Option<i32>,
        /// The readings, normalised.
        readings: Readings,
    },
    /// StatusNotification.
    StatusNotification(StatusReport),
    /// DataTransfer from the charge point.
    DataTransfer {
        /// `vendorId`.
        vendor_id: String,
        /// `messageId`.
        message_id: Option<String>,
        /// `data`, verbatim.
        data: Option<String>,
    },
    /// DiagnosticsStatusNotification.
    DiagnosticsStatus {
        /// OCPP `DiagnosticsStatus`.
        status: String,
    },
    /// FirmwareStatusNotification.
    FirmwareStatus {
        /// OCPP `FirmwareStatus`.
        status: String,
    },
    /// An event of a transaction the charge point names itself (OCPP 2.0.1 TransactionEvent).
    StationTransaction(StationTransaction),
    /// Something the charge point reports for the log only (OCPP 2.0.1 NotifyEvent,
    /// SecurityEventNotification): logged and acknowledged, nothing stored.
    Notice {
        /// What kind of report (the action), for the log line.
        kind: &'static str,
        /// A one-line summary of what it said.
        detail: String,
    },
}

/// Where in its life a [`StationTransaction`] event finds the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStage {
    /// The first event: the transaction begins (a retry names the same id and is idempotent).
    Started,
    /// A later event, typically with meter values.
    Updated,
    /// The last event: the transaction ends.
    Ended,
}

/// One event of a transaction whose id the charge point chose (OCPP 2.0.1: a string of up to
/// 36 characters). The stored records and the admin API keep server-assigned integer ids, so
/// the actor maps the station's id onto one at first sight (and keeps the mapping in Redis, so
/// it survives restarts and takeovers). An `Updated` or `Ended` event for an id never seen
/// opens the transaction implicitly: it was started while the charge point was offline.
#[derive(Debug, Clone, PartialEq)]
pub struct StationTransaction {
    /// The charge point's own transaction id.
    pub station_transaction_id: String,
    /// Started, Updated or Ended.
    pub stage: TransactionStage,
    /// The stored connector the transaction runs on (2.0.1: the EVSE id); `None` when the event
    /// does not say (the spec only requires it once), then the one already known applies.
    pub connector_id: Option<u32>,
    /// The token presented, if the event carries one (2.0.1 allows transactions without).
    pub id_tag: Option<String>,
    /// When the event happened.
    pub timestamp: DateTime<Utc>,
    /// Why the charge point sent it (2.0.1 `triggerReason`), for the log.
    pub trigger: String,
    /// The charge point's sequence number of the event (retransmissions repeat it).
    pub seq_no: i64,
    /// Why the transaction stopped (2.0.1 `stoppedReason`), kept as the stop reason.
    pub stopped_reason: Option<String>,
    /// The event's meter values (samples carry no transaction id yet: the actor fills in the
    /// integer one); `offline` when the event happened while the charge point was offline.
    pub readings: Readings,
}

/// Whether an idTag may charge (OCPP `AuthorizationStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationStatus {
    /// Allowed.
    Accepted,
    /// Known but blocked.
    Blocked,
    /// Known but expired.
    Expired,
    /// Unknown to the server.
    Invalid,
    /// Already in another transaction.
    ConcurrentTx,
}

impl AuthorizationStatus {
    /// The OCPP spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizationStatus::Accepted => "Accepted",
            AuthorizationStatus::Blocked => "Blocked",
            AuthorizationStatus::Expired => "Expired",
            AuthorizationStatus::Invalid => "Invalid",
            AuthorizationStatus::ConcurrentTx => "ConcurrentTx",
        }
    }
}

/// Outcome of a DataTransfer (OCPP `DataTransferStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataTransferStatus {
    /// Understood and accepted.
    Accepted,
    /// Understood and rejected.
    Rejected,
    /// The message id is unknown.
    UnknownMessageId,
    /// The vendor id is unknown: what this server answers, as it implements no vendor extension.
    UnknownVendorId,
}

impl DataTransferStatus {
    /// The OCPP spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DataTransferStatus::Accepted => "Accepted",
            DataTransferStatus::Rejected => "Rejected",
            DataTransferStatus::UnknownMessageId => "UnknownMessageId",
            DataTransferStatus::UnknownVendorId => "UnknownVendorId",
        }
    }
}

/// The server's answer to a [`Request`], turned into a CALLRESULT by the protocol edge.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// BootNotification.conf: always Accepted by this server.
    Boot {
        /// Server time, so the charge point can set its clock.
        current_time: DateTime<Utc>,
        /// Heartbeat interval the charge point should use.
        interval_secs: u32,
    },
    /// Heartbeat.conf.
    Heartbeat {
        /// Server time.
        current_time: DateTime<Utc>,
    },
    /// Authorize.conf.
    Authorize {
        /// Verdict on the idTag.
        status: AuthorizationStatus,
    },
    /// StartTransaction.conf.
    StartTransaction {
        /// The id assigned by the server, unique across restarts.
        transaction_id: i32,
        /// Verdict on the idTag.
        status: AuthorizationStatus,
    },
    /// StopTransaction.conf; `status` is present when the request carried an idTag.
    StopTransaction {
        /// Verdict on the idTag, if one was sent.
        status: Option<AuthorizationStatus>,
    },
    /// MeterValues.conf (empty).
    MeterValues,
    /// StatusNotification.conf (empty).
    StatusNotification,
    /// DataTransfer.conf.
    DataTransfer {
        /// Outcome.
        status: DataTransferStatus,
        /// Optional answer data.
        data: Option<String>,
    },
    /// DiagnosticsStatusNotification.conf (empty).
    DiagnosticsStatus,
    /// FirmwareStatusNotification.conf (empty).
    FirmwareStatus,
    /// The answer to a [`StationTransaction`] event; `status` is the verdict on its token when
    /// it carried one.
    StationTransaction {
        /// Verdict on the token, if one was sent.
        status: Option<AuthorizationStatus>,
    },
    /// A [`Request::Notice`] was logged (empty answer).
    Noted,
    /// The server could not handle the request (for example no transaction id could be
    /// allocated because Redis is down); the edge answers with a CALLERROR `InternalError`.
    Failed(String),
}

// ---------------------------------------------------------------------------------------------
// The actor
// ---------------------------------------------------------------------------------------------

/// Behaviour that the operator configures (`[ocpp]`).
#[derive(Debug, Clone)]
pub struct ChargePointSettings {
    /// Heartbeat interval given in BootNotification.conf.
    pub heartbeat_interval_secs: u32,
    /// When set, only these idTags are accepted; otherwise every idTag is.
    pub id_tag_allow_list: Option<HashSet<String>>,
    /// Buffer limits for the station's buffer.
    pub buffer: BufferSettings,
    /// How long the statistics snapshot lives in Redis (`retention.stats_hours`), in seconds.
    pub stats_ttl_secs: u64,
    /// How long a server-initiated call waits for its answer (`ocpp.call_timeout_secs`).
    pub call_timeout: Duration,
    /// The metering profile set at boot (`[ocpp.metering]`); `None` when turned off.
    pub metering: Option<Arc<MeteringProfile>>,
    /// `buffer.max_pending_samples`: with the write-ahead log on, a writer backlog this large
    /// makes MeterValues answer with an error (the charge point keeps them) rather than the
    /// writer dropping what was acknowledged.
    pub max_pending_samples: usize,
}

/// Everything a charge point actor needs from the rest of the system, cloned into each one.
#[derive(Clone)]
pub struct Services {
    /// Settings shared by all charge points.
    pub settings: Arc<ChargePointSettings>,
    /// The Redis writer.
    pub writer: Recipient<WriteBatch>,
    /// The live sample stream.
    pub stream: SampleStream,
    /// Transaction id source.
    pub transaction_ids: TransactionIds,
    /// Connected charge points.
    pub registry: Registry<ChargePointActor>,
    /// Shared ingest counters.
    pub counters: Arc<IngestCounters>,
    /// Redis, for the boot metering run (profile override, reported configuration, refusals).
    pub pool: crate::redis_pool::Pool,
    /// The write-ahead log every answered reading and transaction reaches before its answer;
    /// `None` when `wal.enabled` is false (answers then mean "in memory").
    pub wal: Option<Wal>,
    /// The writer's backlog, checked against `max_pending_samples` before accepting readings.
    pub writer_stats: Arc<WriterStats>,
    /// Charge points with samples handed to the writer and not yet in Redis (each batch
    /// counts itself, see [`WriteBatch::samples`]); raw reads of the others skip the writer.
    pub unwritten: Arc<crate::backlog::Backlog>,
    /// The fleet: the owner record this session claimed is turned into a "left" record when
    /// it ends.
    pub fleet: Arc<dyn OwnerRecords>,
}

/// The fleet's owner records as a session sees them: it only reports that it ended.
/// [`crate::fleet::Fleet`] implements it; a trait rather than the fleet itself because the fleet
/// reaches sessions (takeovers, routed calls) and so depends on this module, not this module on
/// the fleet.
pub trait OwnerRecords: Send + Sync {
    /// Ends this instance's hold on `cp` for `session` (see [`crate::fleet::Fleet::leave`]).
    fn leave(&self, cp: &ChargePointId, session: u64);
}

/// Why the server closes a session; the edge picks the WebSocket close code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// A new connection with the same id took over.
    Replaced,
    /// The server is shutting down.
    Shutdown,
}

/// The actor's back channel to the connection that carries it. At most a call and a close are
/// ever queued, so what matters is what an empty channel costs, per connected charge point
/// (issue 13, memory per idle charge point): a tokio channel allocates its slots 32 at a time
/// when it is created and keeps them for its life (32 slots of a command were ~2.3 KiB, of a
/// boxed command ~0.8 KiB with the channel's state); futures' channel allocates a node per
/// message, and keeps one empty node, boxed so that it holds a pointer, not a command.
pub type SessionCommands = UnboundedSender<Box<SessionCommand>>;

/// What the actor asks of the connection that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionCommand {
    /// Close the connection.
    Close(CloseReason),
    /// Send this call to the charge point as `unique_id` and report its answer with
    /// [`CallAnswered`].
    Call {
        /// The uniqueId of the CALL.
        unique_id: String,
        /// What to ask.
        call: ServerCall,
    },
}

/// The connection ended (the peer left, timed out or broke the protocol); stop and flush.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Disconnected;

/// Close the session from the server side (replacement or shutdown).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Close(pub CloseReason);

/// Another instance took this charge point over: close the session as replaced and hand the
/// buffer to the writer. Resolves once the buffer's batch is queued in the writer (or the
/// buffer is gone, having flushed as it stopped), so a `Drain` sent after it covers it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Handover;

/// Live state of a connected charge point, for the admin API.
#[derive(Debug, Clone)]
pub struct ChargePointState {
    /// The charge point.
    pub id: ChargePointId,
    /// Identity from the last BootNotification of this session, if any.
    pub boot: Option<BootInfo>,
    /// Last status per connector.
    pub connectors: Vec<StatusReport>,
    /// Transactions started and not yet stopped in this session.
    pub open_transactions: Vec<OpenTransaction>,
    /// Last message of any kind.
    pub last_seen: DateTime<Utc>,
    /// When this session began.
    pub connected_since: DateTime<Utc>,
}

/// Read the live state.
#[derive(Debug, Message)]
#[rtype(result = "ChargePointState")]
pub struct Snapshot;

/// Read the newest sample per (connector, measurand, phase) seen in this session.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Sample>")]
pub struct Latest;

/// Read the real-time statistics of this session (counters, rates, power, open energy).
#[derive(Debug, Message)]
#[rtype(result = "ChargePointStats")]
pub struct Stats;

/// Read the samples still in the station's buffer.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Sample>")]
pub struct BufferedSamples;

/// The connection's report of the charge point's answer to the call sent as `unique_id`.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct CallAnswered {
    /// The uniqueId of the CALL answered.
    pub unique_id: String,
    /// The decoded answer, or why there is none.
    pub result: CallResult,
}

/// How a request is answered: at once, or once its write-ahead log record is on disk.
enum Answer {
    /// Nothing to make durable (or the log is off).
    Now(Reply),
    /// The reply, held back until the record is durable; a failed commit answers
    /// [`Reply::Failed`] instead, so the charge point keeps and resends its message.
    AfterCommit(Reply, Durable),
}

impl Answer {
    /// `reply` once `durable` (if any) resolves.
    fn after(reply: Reply, durable: Option<Durable>) -> Answer {
        match durable {
            Some(durable) => Answer::AfterCommit(reply, durable),
            None => Answer::Now(reply),
        }
    }

    /// The reply, when it may go out.
    async fn settle(self) -> Reply {
        match self {
            Answer::Now(reply) => reply,
            Answer::AfterCommit(reply, durable) => match durable.wait().await {
                Ok(()) => reply,
                Err(error) => Reply::Failed(error.to_string()),
            },
        }
    }
}

/// See the module documentation.
pub struct ChargePointActor {
    /// Who this is.
    id: ChargePointId,
    /// This connection's number in the registry.
    session: u64,
    /// Shared services: one copy for all sessions (a copy per actor was 160 bytes and the
    /// writer address's own allocation, per connected charge point).
    services: Arc<Services>,
    /// The station's unwritten samples, opened with the actor and flushed when it stops.
    buffer: StationBuffer,
    /// Back channel to the connection.
    connection: SessionCommands,
    /// From BootNotification.
    boot: Option<BootInfo>,
    /// Last status per connector.
    connectors: BTreeMap<u32, StatusReport>,
    /// Open transactions by id.
    open_transactions: HashMap<i32, OpenTransaction>,
    /// Newest sample per series.
    latest: LatestSamples,
    /// Recently seen readings, to drop a retried MeterValues before anyone sees it twice.
    recent: RecentSamples,
    /// Last message of any kind.
    last_seen: DateTime<Utc>,
    /// Session start.
    connected_since: DateTime<Utc>,
    /// Real-time statistics, served by [`Stats`] and snapshotted to Redis.
    stats: LiveStats,
    /// Server-initiated calls: one outstanding, the rest waiting.
    calls: CallQueue,
    /// Whether a boot metering run is under way, so a second BootNotification does not start
    /// another one beside it.
    metering_running: Arc<std::sync::atomic::AtomicBool>,
    /// Whether another instance took the session over: its owner record is not ours to end.
    handed_over: bool,
    /// Station-named transactions seen in this session: the charge point's id to the integer
    /// id it maps onto (looked up in Redis, or assigned, at first sight).
    station_transactions: HashMap<String, i32>,
}

impl ChargePointActor {
    /// An actor for a new session `session` of charge point `id`.
    pub fn new(
        id: ChargePointId,
        session: u64,
        services: Arc<Services>,
        connection: SessionCommands,
    ) -> Self {
        let now = Utc::now();
        let recent = RecentSamples::new(
            services.settings.buffer.dedupe_window,
            services.settings.buffer.dedupe_max_age,
        );
        ChargePointActor {
            id,
            session,
            services,
            buffer: StationBuffer::default(),
            connection,
            boot: None,
            connectors: BTreeMap::new(),
            open_transactions: HashMap::new(),
            latest: LatestSamples::default(),
            recent,
            last_seen: now,
            connected_since: now,
            stats: LiveStats::new(now),
            calls: CallQueue::default(),
            metering_running: Arc::default(),
            handed_over: false,
            station_transactions: HashMap::new(),
        }
    }

    fn authorize(&self, id_tag: &str) -> AuthorizationStatus {
        match &self.services.settings.id_tag_allow_list {
            Some(allowed) if !allowed.contains(id_tag) => AuthorizationStatus::Invalid,
            _ => AuthorizationStatus::Accepted,
        }
    }

    /// Sends the next waiting call when none is outstanding, with its timeout.
    fn send_next_call(&mut self, ctx: &mut Context<Self>) {
        while let Some((unique_id, call)) = self.calls.next_to_send() {
            let command = Box::new(SessionCommand::Call {
                unique_id: unique_id.clone(),
                call,
            });
            if self.connection.unbounded_send(command).is_err() {
                self.calls.finish(&unique_id, Err(CallError::NotConnected));
                continue;
            }
            let timeout = self.services.settings.call_timeout;
            let timer = ctx.run_later(timeout, move |act, ctx| {
                log::warn!(
                    "{}: no answer to call {unique_id} within {} s.",
                    act.id,
                    timeout.as_secs()
                );
                act.calls
                    .finish(&unique_id, Err(CallError::Timeout(timeout.as_secs())));
                act.send_next_call(ctx);
            });
            self.calls.sent(timer);
            return;
        }
    }

    /// Starts the boot metering run in the background, unless one is running or it is off.
    fn start_metering(&self, ctx: &mut Context<Self>) {
        let Some(defaults) = self.services.settings.metering.clone() else {
            return;
        };
        if self.metering_running.swap(true, Ordering::SeqCst) {
            return;
        }
        let run = BootMetering {
            id: self.id.clone(),
            calls: ctx.address().recipient(),
            pool: self.services.pool.clone(),
            defaults,
            stream: self.services.stream.clone(),
        };
        let id = self.id.clone();
        let running = self.metering_running.clone();
        actix::spawn(async move {
            if let Err(error) = run.run().await {
                log::warn!("{id}: the boot metering profile was not applied: {error}.");
            }
            running.store(false, Ordering::SeqCst);
        });
    }

    fn notify(&self, event: SessionEvent) {
        self.services.stream.publish_event(SessionNotice {
            charge_point: self.id.clone(),
            event,
            at: Utc::now(),
        });
    }

    /// Hands a record change the write-ahead log does not keep (boot, status, presence,
    /// statistics: each is reported again) to the writer.
    fn store(&self, op: StoreOp) {
        self.services
            .writer
            .do_send(WriteBatch::ops(self.id.clone(), vec![op], None));
    }

    /// Sends the statistics snapshot to Redis, when something changed since the last one (or
    /// always, with `force`, at the end of the session).
    fn persist_stats(&mut self, force: bool) {
        if !self.stats.take_changed() && !force {
            return;
        }
        let snapshot = self.stats.snapshot(
            Utc::now(),
            self.latest.iter(),
            self.open_transactions.values(),
        );
        match serde_json::to_string(&snapshot) {
            Ok(document) => self.store(StoreOp::Stats {
                document,
                ttl_secs: self.services.settings.stats_ttl_secs,
            }),
            Err(error) => log::error!("{}: statistics not stored: {error}.", self.id),
        }
    }

    /// Logs readings and record changes in the write-ahead log, then publishes the readings to
    /// the live stream and the buffer (keeping the newest per series) and hands the changes to
    /// the writer. Returns the commit the answer must wait for, or why the request cannot be
    /// accepted now (log full or failing, writer backlog full): then nothing was taken, and the
    /// charge point's resend is not mistaken for a repeat.
    fn ingest(
        &mut self,
        mut readings: Readings,
        ops: Vec<StoreOp>,
        ctx: &mut Context<Self>,
    ) -> Result<Option<Durable>, String> {
        let counters = &self.services.counters;
        if !readings.rejected.is_empty() {
            counters
                .values_rejected
                .fetch_add(readings.rejected.len() as u64, Ordering::Relaxed);
            for reason in &readings.rejected {
                log::warn!("{}: skipped a sampled value: {reason}", self.id);
            }
        }
        if readings.naive_timestamps > 0 {
            counters
                .naive_timestamps
                .fetch_add(u64::from(readings.naive_timestamps), Ordering::Relaxed);
        }
        if self.services.wal.is_some()
            && !readings.samples.is_empty()
            && self
                .services
                .writer_stats
                .backlog_full(self.services.settings.max_pending_samples)
        {
            log::warn!(
                "{}: readings refused: the writer backlog is full (Redis is slow or away).",
                self.id
            );
            return Err("the storage backlog is full; send the readings again later".into());
        }
        let repeats = self.recent.retain_new(&mut readings.samples);
        if repeats > 0 {
            counters
                .samples_repeated
                .fetch_add(repeats as u64, Ordering::Relaxed);
            log::debug!("{}: dropped {repeats} repeated readings.", self.id);
        }
        if readings.samples.is_empty() && ops.is_empty() {
            return Ok(None);
        }
        let (raw, rollup, durable) = match &self.services.wal {
            Some(wal) => match wal.append(&self.id, &readings.samples, &ops) {
                Ok(appended) => (Some(appended.raw), appended.rollup, Some(appended.durable)),
                Err(error) => {
                    // Not taken: the resend must not count as a repeat.
                    self.recent.forget(&readings.samples);
                    log::warn!("{}: request refused: {error}.", self.id);
                    return Err(error.to_string());
                }
            },
            None => (None, None, None),
        };
        if !ops.is_empty() {
            self.services
                .writer
                .do_send(WriteBatch::ops(self.id.clone(), ops, raw.clone()));
        }
        if readings.samples.is_empty() {
            return Ok(durable);
        }
        let counters = &self.services.counters;
        counters
            .samples_received
            .fetch_add(readings.samples.len() as u64, Ordering::Relaxed);
        self.stats
            .record_samples(readings.samples.len(), Utc::now());
        self.latest.record(&readings.samples);
        if self.services.stream.has_subscribers() {
            self.services.stream.publish(SampleBatch {
                charge_point: self.id.clone(),
                samples: Arc::from(readings.samples.clone()),
                wal: rollup,
                recorded_offline: readings.offline,
            });
        }
        self.buffer
            .push(readings.samples, raw, outlet(&self.id, &self.services), ctx);
        Ok(durable)
    }

    /// Handles a request that needs no Redis round trip (all but StartTransaction).
    fn answer(&mut self, request: Request, ctx: &mut Context<Self>) -> Answer {
        let reply = match request {
            Request::Boot(boot) => {
                log::info!(
                    "{}: booted ({} {}, firmware {}).",
                    self.id,
                    boot.vendor,
                    boot.model,
                    boot.firmware_version.as_deref().unwrap_or("unknown")
                );
                self.store(StoreOp::Booted(boot.clone()));
                self.boot = Some(boot);
                Reply::Boot {
                    current_time: Utc::now(),
                    interval_secs: self.services.settings.heartbeat_interval_secs,
                }
            }
            Request::Heartbeat => Reply::Heartbeat {
                current_time: Utc::now(),
            },
            Request::Authorize { id_tag } => Reply::Authorize {
                status: self.authorize(&id_tag),
            },
            Request::StopTransaction {
                transaction_id,
                id_tag,
                meter_stop,
                timestamp,
                reason,
                mut readings,
            } => {
                let connector_id = self
                    .open_transactions
                    .get(&transaction_id)
                    .map(|open| open.connector_id);
                if let Some(connector_id) = connector_id {
                    for sample in &mut readings.samples {
                        sample.connector_id = connector_id;
                    }
                }
                let stopped = StoreOp::TransactionStopped {
                    transaction_id,
                    id_tag: id_tag.clone(),
                    meter_stop,
                    timestamp,
                    reason,
                };
                let durable = match self.ingest(readings, vec![stopped], ctx) {
                    Ok(durable) => durable,
                    Err(error) => return Answer::Now(Reply::Failed(error)),
                };
                self.open_transactions.remove(&transaction_id);
                self.notify(SessionEvent::TransactionStopped {
                    transaction_id,
                    connector_id,
                    meter_stop,
                });
                let reply = Reply::StopTransaction {
                    status: id_tag.as_deref().map(|tag| self.authorize(tag)),
                };
                return Answer::after(reply, durable);
            }
            Request::MeterValues { readings, .. } => {
                self.stats.record_meter_values(Utc::now());
                return match self.ingest(readings, Vec::new(), ctx) {
                    Ok(durable) => Answer::after(Reply::MeterValues, durable),
                    Err(error) => Answer::Now(Reply::Failed(error)),
                };
            }
            Request::StatusNotification(report) => {
                self.store(StoreOp::Status(report.clone()));
                self.notify(SessionEvent::Status(report.clone()));
                self.connectors.insert(report.connector_id, report);
                Reply::StatusNotification
            }
            Request::DataTransfer { vendor_id, .. } => {
                log::info!(
                    "{}: DataTransfer from unknown vendor {vendor_id:?}.",
                    self.id
                );
                Reply::DataTransfer {
                    status: DataTransferStatus::UnknownVendorId,
                    data: None,
                }
            }
            Request::DiagnosticsStatus { status } => {
                log::info!("{}: diagnostics status {status}.", self.id);
                Reply::DiagnosticsStatus
            }
            Request::FirmwareStatus { status } => {
                log::info!("{}: firmware status {status}.", self.id);
                Reply::FirmwareStatus
            }
            Request::Notice { kind, detail } => {
                log::info!("{}: {kind}: {detail}", self.id);
                Reply::Noted
            }
            // Handled asynchronously in the Handler.
            Request::StartTransaction { .. } | Request::StationTransaction(_) => {
                Reply::Failed("unexpected".into())
            }
        };
        Answer::Now(reply)
    }
}

/// Where a station-named transaction's integer id came from.
enum StationIdSource {
    /// Known to this session, or found in Redis (a start record exists; its `meter_start`
    /// when read from Redis).
    Known(Option<i64>),
    /// Assigned now: this event opens the transaction's record.
    Assigned,
}

impl ChargePointActor {
    /// Handles a [`StationTransaction`] event: finds the integer id the station's id maps onto
    /// (this session's map, then Redis, else a new one from [`TransactionIds`]), then applies
    /// the event. The mapping lookup is the only Redis round trip, and only at first sight.
    fn station_transaction(
        &mut self,
        event: StationTransaction,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Reply> {
        if let Some(&id) = self.station_transactions.get(&event.station_transaction_id) {
            let answer = self.apply_station_event(id, StationIdSource::Known(None), event, ctx);
            return match answer {
                Answer::Now(reply) => Box::pin(actix::fut::ready(reply)),
                answer => Box::pin(answer.settle().into_actor(self)),
            };
        }
        let ids = self.services.transaction_ids.clone();
        let cp = self.id.clone();
        let station_id = event.station_transaction_id.clone();
        Box::pin(
            async move {
                match ids.station_transaction(&cp, &station_id).await {
                    Ok(Some((id, meter_start))) => Ok((id, StationIdSource::Known(meter_start))),
                    Ok(None) => ids
                        .next()
                        .await
                        .map(|id| (id, StationIdSource::Assigned))
                        .map_err(|e| e.to_string()),
                    Err(error) => Err(error.to_string()),
                }
            }
            .into_actor(self)
            .map(move |found, act, ctx| match found {
                Ok((id, source)) => act.apply_station_event(id, source, event, ctx),
                Err(error) => {
                    log::error!(
                        "{}: transaction {:?} cannot be mapped to an id: {error}.",
                        act.id,
                        event.station_transaction_id
                    );
                    Answer::Now(Reply::Failed(error))
                }
            })
            .then(|answer, act, _| answer.settle().into_actor(act)),
        )
    }

    /// Applies a station transaction event whose integer id is `transaction_id`: opens the
    /// record when the id was just assigned (meter_start from the event's import register,
    /// else 0), stores the readings under the id, and on `Ended` closes the record (meter_stop
    /// from the event's import register, else the last one known, else meter_start).
    fn apply_station_event(
        &mut self,
        transaction_id: i32,
        source: StationIdSource,
        event: StationTransaction,
        ctx: &mut Context<Self>,
    ) -> Answer {
        let StationTransaction {
            station_transaction_id,
            stage,
            connector_id,
            id_tag,
            timestamp,
            trigger,
            seq_no,
            stopped_reason,
            mut readings,
        } = event;
        let open = self.open_transactions.get(&transaction_id).cloned();
        let connector_id = connector_id
            .or(open.as_ref().map(|o| o.connector_id))
            .unwrap_or(0);
        for sample in &mut readings.samples {
            sample.connector_id = connector_id;
            sample.transaction_id = Some(transaction_id);
        }
        let register = import_register(&readings.samples);
        log::debug!(
            "{}: transaction {station_transaction_id:?} ({transaction_id}) {stage:?} #{seq_no} ({trigger}).",
            self.id
        );
        let status = id_tag.as_deref().map(|tag| self.authorize(tag));
        let mut ops = Vec::new();
        let mut opened = None;
        let meter_start = match (&source, &open) {
            (_, Some(open)) => open.meter_start,
            (StationIdSource::Known(Some(start)), None) => *start,
            _ => register.unwrap_or(0),
        };
        if matches!(source, StationIdSource::Assigned) {
            ops.push(StoreOp::TransactionStarted {
                transaction_id,
                connector_id,
                id_tag: id_tag.clone().unwrap_or_default(),
                meter_start,
                timestamp,
                station_transaction_id: Some(station_transaction_id.clone()),
            });
        }
        if open.is_none() && stage != TransactionStage::Ended {
            opened = Some(OpenTransaction {
                transaction_id,
                connector_id,
                id_tag: id_tag.clone().unwrap_or_default(),
                meter_start,
                started_at: timestamp,
            });
        }
        let mut stopped = None;
        if stage == TransactionStage::Ended {
            let last_known = self
                .latest
                .get(connector_id, Measurand::EnergyActiveImportRegister, None)
                .filter(|s| s.transaction_id == Some(transaction_id))
                .and_then(Sample::number)
                .map(|wh| wh.round() as i64);
            let meter_stop = register.or(last_known).unwrap_or(meter_start);
            ops.push(StoreOp::TransactionStopped {
                transaction_id,
                id_tag: id_tag.clone(),
                meter_stop,
                timestamp,
                reason: stopped_reason,
            });
            stopped = Some(meter_stop);
        }
        let has_readings = !readings.samples.is_empty();
        let durable = match self.ingest(readings, ops, ctx) {
            Ok(durable) => durable,
            // Nothing was taken, the start record included: the station's retry must find the
            // id unmapped again (an assigned id is simply skipped).
            Err(error) => return Answer::Now(Reply::Failed(error)),
        };
        self.station_transactions
            .insert(station_transaction_id.clone(), transaction_id);
        if has_readings {
            self.stats.record_meter_values(Utc::now());
        }
        if let Some(open) = opened {
            log::info!(
                "{}: transaction {transaction_id} ({station_transaction_id:?}) started on connector {connector_id}.",
                self.id
            );
            self.notify(SessionEvent::TransactionStarted {
                transaction_id,
                connector_id,
                meter_start: open.meter_start,
            });
            self.open_transactions.insert(transaction_id, open);
        }
        if let Some(meter_stop) = stopped {
            self.open_transactions.remove(&transaction_id);
            self.notify(SessionEvent::TransactionStopped {
                transaction_id,
                connector_id: Some(connector_id),
                meter_stop,
            });
        }
        Answer::after(Reply::StationTransaction { status }, durable)
    }
}

/// The newest whole-meter (no phase) Energy.Active.Import.Register reading among `samples`,
/// in Wh: what opens and closes a station-named transaction's record.
fn import_register(samples: &[Sample]) -> Option<i64> {
    samples
        .iter()
        .filter(|s| s.measurand == Measurand::EnergyActiveImportRegister && s.phase.is_none())
        .filter_map(|s| s.number().map(|wh| (s.timestamp, wh)))
        .max_by_key(|(at, _)| *at)
        .map(|(_, wh)| wh.round() as i64)
}

/// What the station's buffer needs to close a batch, lent from the actor's own fields.
fn outlet<'a>(id: &'a ChargePointId, services: &'a Services) -> Outlet<'a> {
    Outlet {
        charge_point: id,
        settings: &services.settings.buffer,
        writer: &services.writer,
        unwritten: &services.unwritten,
        counters: &services.counters,
    }
}

impl BufferOwner for ChargePointActor {
    fn batch_aged(&mut self, ctx: &mut Context<Self>) {
        self.buffer.aged(outlet(&self.id, &self.services), ctx);
    }
}

impl Actor for ChargePointActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(PERSIST_INTERVAL, |act, _| {
            act.persist_stats(false);
            act.recent.expire();
        });
        self.buffer = StationBuffer::open(&self.services.counters);
        self.store(StoreOp::Presence {
            connected: true,
            at: self.connected_since,
        });
        self.notify(SessionEvent::Connected);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.calls.fail_all(CallError::NotConnected);
        // What the buffer holds goes to the writer; its memory goes with the actor.
        self.buffer.close(outlet(&self.id, &self.services));
        // A replacement session has already recorded itself as connected; leave that be.
        let replaced = self
            .services
            .registry
            .get(&self.id)
            .is_some_and(|c| c.session != self.session);
        if !replaced {
            self.persist_stats(true);
            self.store(StoreOp::Presence {
                connected: false,
                at: self.last_seen,
            });
        }
        self.services.registry.unregister(&self.id, self.session);
        if !self.handed_over {
            self.services.fleet.leave(&self.id, self.session);
        }
        self.notify(SessionEvent::Disconnected);
        log::info!("{}: disconnected.", self.id);
    }
}

impl Message for Request {
    type Result = Reply;
}

impl Handler<Request> for ChargePointActor {
    type Result = ResponseActFuture<Self, Reply>;

    fn handle(&mut self, request: Request, ctx: &mut Self::Context) -> Self::Result {
        if matches!(request, Request::Boot(_)) {
            // Runs after this reply is written: its first call waits for Redis and then for
            // the session loop, which writes the BootNotification answer first.
            self.start_metering(ctx);
        }
        self.last_seen = Utc::now();
        self.stats.record_message(self.last_seen);
        self.services
            .counters
            .messages
            .fetch_add(1, Ordering::Relaxed);
        let request = match request {
            Request::StationTransaction(event) => return self.station_transaction(event, ctx),
            other => other,
        };
        let Request::StartTransaction {
            connector_id,
            id_tag,
            meter_start,
            timestamp,
            ..
        } = request
        else {
            return match self.answer(request, ctx) {
                Answer::Now(reply) => Box::pin(actix::fut::ready(reply)),
                answer => Box::pin(answer.settle().into_actor(self)),
            };
        };
        let status = self.authorize(&id_tag);
        let ids = self.services.transaction_ids.clone();
        Box::pin(
            async move { ids.next().await }
                .into_actor(self)
                .map(move |allocated, act, ctx| match allocated {
                    Ok(transaction_id) => {
                        let started = StoreOp::TransactionStarted {
                            transaction_id,
                            connector_id,
                            id_tag: id_tag.clone(),
                            meter_start,
                            timestamp,
                            station_transaction_id: None,
                        };
                        let durable = match act.ingest(Readings::default(), vec![started], ctx) {
                            Ok(durable) => durable,
                            Err(error) => return Answer::Now(Reply::Failed(error)),
                        };
                        log::info!(
                            "{}: transaction {transaction_id} started on connector {connector_id}.",
                            act.id
                        );
                        let open = OpenTransaction {
                            transaction_id,
                            connector_id,
                            id_tag,
                            meter_start,
                            started_at: timestamp,
                        };
                        act.open_transactions.insert(transaction_id, open);
                        // (1.6 start: the server named it; no station id to map.)
                        act.notify(SessionEvent::TransactionStarted {
                            transaction_id,
                            connector_id,
                            meter_start,
                        });
                        let reply = Reply::StartTransaction {
                            transaction_id,
                            status,
                        };
                        Answer::after(reply, durable)
                    }
                    Err(error) => {
                        log::error!("{}: StartTransaction failed: {error}.", act.id);
                        Answer::Now(Reply::Failed(error.to_string()))
                    }
                })
                .then(|answer, act, _| answer.settle().into_actor(act)),
        )
    }
}

impl Handler<Disconnected> for ChargePointActor {
    type Result = ();

    fn handle(&mut self, _: Disconnected, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<Close> for ChargePointActor {
    type Result = ();

    fn handle(&mut self, Close(reason): Close, ctx: &mut Self::Context) {
        let _ = self
            .connection
            .unbounded_send(Box::new(SessionCommand::Close(reason)));
        ctx.stop();
    }
}

impl Handler<Handover> for ChargePointActor {
    type Result = ();

    fn handle(&mut self, _: Handover, ctx: &mut Self::Context) {
        self.handed_over = true;
        let _ = self
            .connection
            .unbounded_send(Box::new(SessionCommand::Close(CloseReason::Replaced)));
        // The new owner reads what this instance stored: the open batch goes to the writer now.
        self.buffer.flush(outlet(&self.id, &self.services), ctx);
        ctx.stop();
    }
}

impl Handler<Snapshot> for ChargePointActor {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _: Snapshot, _: &mut Self::Context) -> Self::Result {
        MessageResult(ChargePointState {
            id: self.id.clone(),
            boot: self.boot.clone(),
            connectors: self.connectors.values().cloned().collect(),
            open_transactions: self.open_transactions.values().cloned().collect(),
            last_seen: self.last_seen,
            connected_since: self.connected_since,
        })
    }
}

impl Handler<Latest> for ChargePointActor {
    type Result = MessageResult<Latest>;

    fn handle(&mut self, _: Latest, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.latest.iter().cloned().collect())
    }
}

impl Handler<BufferedSamples> for ChargePointActor {
    type Result = MessageResult<BufferedSamples>;

    fn handle(&mut self, _: BufferedSamples, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.buffer.samples().to_vec())
    }
}

impl Handler<Stats> for ChargePointActor {
    type Result = MessageResult<Stats>;

    fn handle(&mut self, _: Stats, _: &mut Self::Context) -> Self::Result {
        let now = Utc::now();
        let snapshot =
            self.stats
                .snapshot(now, self.latest.iter(), self.open_transactions.values());
        MessageResult(snapshot.view(now, true, self.latest.iter().cloned().collect()))
    }
}

impl Handler<Call> for ChargePointActor {
    type Result = ResponseFuture<CallResult>;

    fn handle(&mut self, Call(call): Call, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Err(tx) = self.calls.push(call, tx) {
            let _ = tx.send(Err(CallError::Busy));
        }
        self.send_next_call(ctx);
        Box::pin(async move { rx.await.unwrap_or(Err(CallError::NotConnected)) })
    }
}

impl Handler<CallAnswered> for ChargePointActor {
    type Result = ();

    fn handle(&mut self, answered: CallAnswered, ctx: &mut Self::Context) {
        let (matched, timer) = self.calls.finish(&answered.unique_id, answered.result);
        if let Some(timer) = timer {
            ctx.cancel_future(timer);
        }
        if matched {
            self.send_next_call(ctx);
        } else {
            log::debug!(
                "{}: ignoring an answer to call {} that is no longer outstanding.",
                self.id,
                answered.unique_id
            );
        }
    }
}
