//! Several instances, one fleet: what lets ocpp-meter instances share one Redis and behave as
//! one central system.
//!
//! - **Instance lease.** Each instance writes `ocpp:instance:<id>` (its addresses and
//!   incarnation, the start time that tells a restarted instance from the one before) with a
//!   `PX` lease and scores `<id>@<incarnation>` in the `ocpp:instances` sorted set by the
//!   lease's expiry, renewed every third of the lease, removed on a clean shutdown. A crashed
//!   instance drops out when its lease runs out.
//! - **Owner record.** `ocpp:{CP}:owner` names the instance, incarnation and session holding
//!   a charge point ([`Owner`]), claimed with `SET … GET` when the session starts (newest
//!   connection wins, as the local second-connection rule) and turned into a "left" record
//!   (`connected: false`, expiring after one lease) when the session ends. It is not renewed
//!   per charge point: a record counts while its instance's lease does, so holding 20,000
//!   charge points costs the same few commands per renewal as holding one. Every command
//!   touches one key, so each runs in the charge point's slot on Redis Cluster. Should Redis
//!   lose the data (a restart without persistence), the next renewal finds its own lease
//!   missing and writes the records of its sessions again.
//! - **Control channel.** Each instance subscribes to `ocpp:instance:<id>:control` on a
//!   dedicated pub/sub connection (resubscribed with backoff after Redis restarts). Requests
//!   carry a correlation id and the requester's channel: a takeover (close the session, flush
//!   buffer, write-ahead-log-pinned data, roll-ups and alert writes of that charge point, then
//!   acknowledge) and a server-initiated call run on the owner and answered as if local.
//! - **Events channel.** `ocpp:events` carries every instance's live events (samples, session
//!   events, alerts) to every other instance's event hub, tagged with the origin so nobody
//!   streams its own events twice. Publishing goes through a bounded queue: a slow Redis drops
//!   (and counts) events rather than slowing ingest, and nothing is published unless another
//!   instance has a stream client: an instance with clients says so on the channel when its
//!   first one joins and every second after ([`LISTENING_EVERY`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use deadpool_redis::redis;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::aggregator::{Aggregator, FlushChargePoint};
use crate::alerts::{AlertSupervisor, ReleaseAlerts, RestoreAlerts};
use crate::charge_point::{ChargePointActor, Handover, OwnerRecords};
use crate::id::ChargePointId;
use crate::redis_pool::Pool;
use crate::registry::Registry;
use crate::server_call::{Call, CallError, CallResult, ServerCall};
use crate::store::keys;
use crate::store::reads::ReadError;
use crate::writer::{Drain, RedisWriter};

/// Events waiting for the publisher at most; past this they are dropped and counted, so a slow
/// Redis costs live events, never ingest.
pub const EVENT_QUEUE: usize = 4096;

/// Events sent in one `PUBLISH` pipeline at most.
const EVENT_BATCH: usize = 256;

/// Longest the claim of a new session may hold its upgrade when Redis is slow; past it the
/// session starts unclaimed and the claim finishes in the background.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest wait between two attempts to (re)subscribe after Redis went away.
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(5);

/// How often an instance with stream clients tells the others (on the events channel) that
/// their events are wanted; they publish for [`LISTENING_FOR`] after hearing it.
pub const LISTENING_EVERY: Duration = Duration::from_secs(1);

/// How long an instance publishes its events after the last "listening" of another.
const LISTENING_FOR: Duration = Duration::from_secs(3);

/// The event name of a "listening" notice on the events channel (not an SSE event).
const LISTENING: &str = "listening";

/// Replaces an owner record by its "left" form, only while it is still ours.
const LEAVE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0";

/// What the fleet machinery needs from the configuration.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// `server.instance_id` (or its default, hostname:port of the OCPP listener).
    pub instance_id: String,
    /// `server.instance_lease_secs`: how long an instance or owner record lives unrenewed.
    pub lease: Duration,
    /// Where the dedicated pub/sub connection connects: `redis.url`, or every cluster seed
    /// node (`redis.urls`), tried in turn at each reconnect, since `PUBLISH` in Redis Cluster
    /// reaches every node's subscribers and any live node will do.
    pub pubsub_urls: Vec<String>,
    /// How long a new session waits for the previous owner's "flushed" acknowledgement.
    pub takeover_wait: Duration,
    /// `ocpp.call_timeout_secs`: a routed call waits this plus [`CALL_MARGIN`].
    pub call_timeout: Duration,
    /// The OCPP listener's address, shown in the instance record.
    pub ws_addr: String,
    /// The admin listener's address, shown in the instance record.
    pub http_addr: String,
}

/// What a routed call waits beyond `ocpp.call_timeout_secs`: the owner answers 504 itself at
/// the call timeout, so the requester only times out when the owner does not answer at all.
pub const CALL_MARGIN: Duration = Duration::from_secs(2);

/// Counters for `/metrics`; atomics so scrapes never wait.
#[derive(Debug, Default)]
pub struct FleetCounters {
    /// Server-initiated calls this instance routed to the instance holding the charge point.
    pub remote_calls: AtomicU64,
    /// Routed calls that got no answer from the owner (504).
    pub remote_call_timeouts: AtomicU64,
    /// Calls other instances routed here and this instance ran.
    pub remote_calls_served: AtomicU64,
    /// Sessions this instance took over from another instance.
    pub takeovers: AtomicU64,
    /// Sessions this instance closed because another instance took them over.
    pub handovers: AtomicU64,
    /// Events published for the rest of the fleet.
    pub events_published: AtomicU64,
    /// Events not published: the queue was full or Redis refused the pipeline.
    pub events_dropped: AtomicU64,
    /// Events of other instances received and handed to the event hub.
    pub events_received: AtomicU64,
    /// Times the pub/sub connection was (re)established.
    pub subscriptions: AtomicU64,
    /// Other instances whose lease is alive, as of the last renewal.
    pub peers: AtomicUsize,
}

/// The presence record of a charge point: who holds its session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The instance holding (or, with `connected: false`, last holding) the session.
    pub instance: String,
    /// That instance's start (unix ms): a record of an earlier run of the same instance id,
    /// which crashed, is not a hold.
    pub incarnation: i64,
    /// The session's number on that instance.
    pub session: u64,
    /// When the session started.
    pub since: DateTime<Utc>,
    /// False in the "left" record kept one lease after the session ended, so that a new
    /// session elsewhere still asks that instance to flush what it holds.
    pub connected: bool,
}

/// An event of another instance for the local event hub: already rendered JSON, streamed as
/// is.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct RemoteEvent {
    /// Whose event.
    pub charge_point: ChargePointId,
    /// The SSE event name (`sample`, `alert`, ...).
    pub event: String,
    /// The event's JSON data.
    pub data: String,
}

/// What travels on the control channels.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Control {
    /// "I now hold this charge point: close your session and flush it, then answer."
    Takeover {
        /// The charge point.
        charge_point: String,
        /// The requester's instance id, for the log.
        by: String,
        /// Where to answer.
        reply_to: String,
        /// Matches the answer to the request.
        correlation: u64,
    },
    /// "Run this call on the charge point you hold and answer its result."
    Call {
        /// The charge point.
        charge_point: String,
        /// The call.
        call: ServerCall,
        /// Where to answer.
        reply_to: String,
        /// Matches the answer to the request.
        correlation: u64,
    },
    /// The answer to a request.
    Reply {
        /// The request's correlation id.
        correlation: u64,
        /// What it answers (`{"flushed": true}`, a serialised [`CallResult`]).
        body: Value,
    },
}

/// Why a request to another instance got no answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No instance listens on that control channel (it is gone).
    #[error("no instance listens")]
    NoReceiver,
    /// The instance did not answer in time.
    #[error("no answer in time")]
    Timeout,
    /// Redis refused the request.
    #[error(transparent)]
    Redis(#[from] ReadError),
}

/// The local actors a takeover flushes and a routed call reaches.
#[derive(Clone)]
pub struct Targets {
    /// Connected charge points.
    pub registry: Registry<ChargePointActor>,
    /// The writer, drained before a takeover is acknowledged.
    pub writer: Addr<RedisWriter>,
    /// The roll-ups, flushed for the charge point before a takeover is acknowledged.
    pub aggregator: Addr<Aggregator>,
    /// The alert supervisor: restores a charge point's active alerts when its session starts
    /// here, writes and forgets them when it moves away.
    pub alerts: Addr<AlertSupervisor>,
}

/// Cloneable handle; see the module documentation.
#[derive(Clone)]
pub struct Fleet(Arc<Inner>);

/// The shared state behind [`Fleet`].
struct Inner {
    /// Configuration.
    settings: FleetSettings,
    /// Redis, for everything but the subscription.
    pool: Pool,
    /// This run's start (unix ms), in the lease and every owner record.
    incarnation: i64,
    /// Owner records this instance holds: charge point -> (session, the exact value stored),
    /// written again should Redis lose them.
    owned: Mutex<HashMap<ChargePointId, (u64, String)>>,
    /// Live instances (`<id>@<incarnation>`) as of the last renewal.
    live: Mutex<std::collections::HashSet<String>>,
    /// Whether the lease was written once, so a missing one means Redis lost data.
    registered: AtomicBool,
    /// Whether a claim failed (Redis away), so the next renewal writes the records again.
    unwritten: AtomicBool,
    /// Stream clients of this instance's event hub.
    listeners: AtomicUsize,
    /// Until when (unix ms) another instance wants this one's events.
    wanted_until: AtomicI64,
    /// Requests waiting for their answer, by correlation id.
    waiting: Mutex<HashMap<u64, oneshot::Sender<Value>>>,
    /// Source of correlation ids.
    next_correlation: AtomicU64,
    /// Counters for `/metrics`.
    counters: Arc<FleetCounters>,
    /// Events for the publisher; bounded.
    events: mpsc::Sender<String>,
    /// The receiving end, taken by [`Fleet::start`].
    events_rx: Mutex<Option<mpsc::Receiver<String>>>,
    /// The local actors, set by [`Fleet::start`].
    targets: OnceLock<Targets>,
    /// The event hub, set by [`Fleet::start`].
    hub: OnceLock<Recipient<RemoteEvent>>,
    /// Set at shutdown: the loops stop and the lease is not renewed.
    stopping: AtomicBool,
}

/// Locks a mutex whose data stays consistent across a panic (single inserts and removes).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Milliseconds of a duration, for `PX`.
fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl Fleet {
    /// The fleet handle of this instance; nothing runs until [`Fleet::start`].
    pub fn new(settings: FleetSettings, pool: Pool) -> Fleet {
        let (events, events_rx) = mpsc::channel(EVENT_QUEUE);
        Fleet(Arc::new(Inner {
            settings,
            pool,
            incarnation: Utc::now().timestamp_millis(),
            owned: Mutex::default(),
            live: Mutex::default(),
            registered: AtomicBool::new(false),
            unwritten: AtomicBool::new(false),
            listeners: AtomicUsize::new(0),
            wanted_until: AtomicI64::new(0),
            waiting: Mutex::default(),
            next_correlation: AtomicU64::new(1),
            counters: Arc::default(),
            events,
            events_rx: Mutex::new(Some(events_rx)),
            targets: OnceLock::new(),
            hub: OnceLock::new(),
            stopping: AtomicBool::new(false),
        }))
    }

    /// This instance's id.
    pub fn id(&self) -> &str {
        &self.0.settings.instance_id
    }

    /// Counters for `/metrics` and tests.
    pub fn counters(&self) -> &Arc<FleetCounters> {
        &self.0.counters
    }

    /// This instance's control channel.
    fn control_channel(&self) -> String {
        keys::instance_control(self.id())
    }

    /// Registers the instance (first lease written before this returns, so a peer started
    /// next sees it), then runs the lease renewal, the subscription and the event publisher in
    /// the background. With Redis away this returns within about 3 s (the lease and the
    /// subscription are retried in the background).
    pub async fn start(&self, targets: Targets, hub: Recipient<RemoteEvent>) {
        let _ = self.0.targets.set(targets);
        let _ = self.0.hub.set(hub);
        // Bounded: a server starts (and buffers) without Redis.
        match tokio::time::timeout(CLAIM_TIMEOUT, self.renew()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => log::warn!(
                "Fleet: instance {} could not register in Redis yet ({error}); retrying with the lease.",
                self.id()
            ),
            Err(_) => log::warn!(
                "Fleet: instance {} could not register in Redis within {CLAIM_TIMEOUT:?}; retrying with the lease.",
                self.id()
            ),
        }
        let subscribed = Arc::new(tokio::sync::Notify::new());
        actix::spawn(self.clone().lease_loop());
        actix::spawn(self.clone().listening_loop());
        actix::spawn(self.clone().subscribe_loop(subscribed.clone()));
        if let Some(rx) = lock(&self.0.events_rx).take() {
            actix::spawn(self.clone().publish_loop(rx));
        }
        // Answers to requests arrive on the subscription: wait (briefly) until it is up.
        let _ = tokio::time::timeout(Duration::from_secs(2), subscribed.notified()).await;
        log::info!("Fleet: this is instance {}.", self.id());
    }

    /// Removes the instance's lease (clean shutdown) and stops the loops.
    pub async fn stop(&self) {
        self.0.stopping.store(true, Ordering::SeqCst);
        let Ok(mut conn) = self.0.pool.get().await else {
            return;
        };
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(keys::instance(self.id())).ignore();
        pipe.cmd("ZREM")
            .arg(keys::INSTANCES)
            .arg(self.member())
            .ignore();
        if let Err(error) = pipe.query_async::<()>(&mut conn).await {
            log::warn!(
                "Fleet: the instance lease was not removed ({error}); it expires by itself."
            );
        }
    }

    /// This instance's member in `ocpp:instances`.
    fn member(&self) -> String {
        format!("{}@{}", self.id(), self.0.incarnation)
    }

    /// Writes the instance lease and reads the live instances. A lease missing although it
    /// was written before means Redis lost its data (restarted without persistence): the
    /// owner records of the sessions held here are written again.
    async fn renew(&self) -> Result<(), ReadError> {
        let lease = millis(self.0.settings.lease);
        let now = Utc::now().timestamp_millis();
        let record = serde_json::json!({
            "instance": self.id(),
            "incarnation": self.0.incarnation,
            "ws_addr": self.0.settings.ws_addr,
            "http_addr": self.0.settings.http_addr,
            "renewed_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })
        .to_string();
        let mut conn = self.0.pool.get().await?;
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(keys::instance(self.id()))
            .arg(record)
            .arg("PX")
            .arg(lease)
            .arg("GET");
        pipe.cmd("ZADD")
            .arg(keys::INSTANCES)
            .arg(now.saturating_add(i64::try_from(lease).unwrap_or(i64::MAX)))
            .arg(self.member())
            .ignore();
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(keys::INSTANCES)
            .arg("-inf")
            .arg(now)
            .ignore();
        pipe.cmd("ZRANGE").arg(keys::INSTANCES).arg(0).arg(-1);
        let (previous, live): (Option<String>, Vec<String>) = pipe.query_async(&mut conn).await?;
        let peers = live.len().saturating_sub(1);
        self.0.counters.peers.store(peers, Ordering::Relaxed);
        *lock(&self.0.live) = live.into_iter().collect();
        let lost = previous.is_none() && self.0.registered.swap(true, Ordering::SeqCst);
        if lost || self.0.unwritten.swap(false, Ordering::SeqCst) {
            let owned: Vec<(ChargePointId, String)> = lock(&self.0.owned)
                .iter()
                .map(|(cp, (_, value))| (cp.clone(), value.clone()))
                .collect();
            log::warn!(
                "Fleet: writing the owner records of {} sessions again ({}).",
                owned.len(),
                if lost {
                    "Redis lost this instance's lease: restarted without its data?"
                } else {
                    "a claim did not reach Redis"
                }
            );
            for chunk in owned.chunks(500) {
                let mut pipe = redis::pipe();
                for (cp, value) in chunk {
                    pipe.cmd("SET")
                        .arg(keys::owner(cp.as_str()))
                        .arg(value)
                        .arg("NX")
                        .ignore();
                }
                pipe.query_async::<()>(&mut conn).await?;
            }
        }
        Ok(())
    }

    /// Whether the instance an owner record names holds the session now: its lease is alive
    /// and it is the same run; for this instance, the session is in the registry.
    fn holds(&self, owner: &Owner, cp: &str) -> bool {
        if !owner.connected {
            return false;
        }
        if owner.instance == self.id() {
            return owner.incarnation == self.0.incarnation
                && self.0.targets.get().is_some_and(|t| {
                    ChargePointId::parse(cp)
                        .ok()
                        .and_then(|cp| t.registry.get(&cp))
                        .is_some_and(|c| c.session == owner.session)
                });
        }
        lock(&self.0.live).contains(&format!("{}@{}", owner.instance, owner.incarnation))
    }

    /// Renews the lease every third of it until shutdown.
    async fn lease_loop(self) {
        let period = (self.0.settings.lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(period).await;
            if self.0.stopping.load(Ordering::SeqCst) {
                return;
            }
            if let Err(error) = self.renew().await {
                log::warn!("Fleet: lease renewal failed ({error}); retrying.");
            }
        }
    }

    /// Keeps a pub/sub connection subscribed to this instance's control channel and the
    /// fleet's events channel; reconnects with backoff when Redis goes away.
    async fn subscribe_loop(self, subscribed: Arc<tokio::sync::Notify>) {
        let mut backoff = Duration::from_millis(100);
        let mut clients = Vec::new();
        for url in &self.0.settings.pubsub_urls {
            match redis::Client::open(url.as_str()) {
                Ok(client) => clients.push(client),
                Err(error) => log::error!("Fleet: cannot subscribe through {url}: {error}."),
            }
        }
        if clients.is_empty() {
            log::error!("Fleet: no usable Redis URL to subscribe through; remote calls, takeovers and fleet-wide events are off.");
            return;
        }
        let control = self.control_channel();
        let mut attempt = 0usize;
        while !self.0.stopping.load(Ordering::SeqCst) {
            let client = &clients[attempt % clients.len()];
            attempt += 1;
            let connected = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&control).await?;
                pubsub.subscribe(keys::EVENTS_CHANNEL).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            let pubsub = match tokio::time::timeout(Duration::from_secs(5), connected).await {
                Ok(Ok(pubsub)) => pubsub,
                Ok(Err(error)) => {
                    log::warn!("Fleet: cannot subscribe ({error}); retrying in {backoff:?}.");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RESUBSCRIBE_MAX);
                    continue;
                }
                Err(_) => {
                    log::warn!("Fleet: subscribing timed out; retrying in {backoff:?}.");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RESUBSCRIBE_MAX);
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            self.0
                .counters
                .subscriptions
                .fetch_add(1, Ordering::Relaxed);
            subscribed.notify_waiters();
            subscribed.notify_one();
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                if self.0.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(payload) = message.get_payload::<String>() else {
                    continue;
                };
                if message.get_channel_name() == keys::EVENTS_CHANNEL {
                    self.received_event(&payload);
                } else {
                    self.received_control(&payload);
                }
            }
            if !self.0.stopping.load(Ordering::SeqCst) {
                log::warn!("Fleet: the pub/sub connection to Redis ended; resubscribing.");
            }
        }
    }

    /// An event of the fleet: handed to the hub unless it is this instance's own; a
    /// "listening" notice of another instance turns publishing on for [`LISTENING_FOR`].
    fn received_event(&self, payload: &str) {
        let mut parts = payload.splitn(4, '\n');
        let (Some(from), Some(cp), Some(event), Some(data)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return;
        };
        if from == self.id() {
            return;
        }
        if event == LISTENING {
            let until = Utc::now().timestamp_millis()
                + i64::try_from(LISTENING_FOR.as_millis()).unwrap_or(i64::MAX);
            self.0.wanted_until.fetch_max(until, Ordering::Relaxed);
            return;
        }
        // Streamed as one `data:` line: a newline (never in the compact JSON instances publish)
        // would let whoever can publish on Redis forge frames.
        let event_ok = event.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        if data.contains(['\n', '\r']) || !event_ok {
            return;
        }
        let Ok(charge_point) = ChargePointId::parse(cp) else {
            return;
        };
        self.0
            .counters
            .events_received
            .fetch_add(1, Ordering::Relaxed);
        if let Some(hub) = self.0.hub.get() {
            hub.do_send(RemoteEvent {
                charge_point,
                event: event.to_owned(),
                data: data.to_owned(),
            });
        }
    }

    /// A request or answer on this instance's control channel.
    fn received_control(&self, payload: &str) {
        let control: Control = match serde_json::from_str(payload) {
            Ok(control) => control,
            Err(error) => {
                log::warn!("Fleet: unreadable control message ignored ({error}).");
                return;
            }
        };
        match control {
            Control::Reply { correlation, body } => {
                if let Some(waiter) = lock(&self.0.waiting).remove(&correlation) {
                    let _ = waiter.send(body);
                }
            }
            Control::Takeover {
                charge_point,
                by,
                reply_to,
                correlation,
            } => {
                let fleet = self.clone();
                actix::spawn(async move {
                    if let Ok(cp) = ChargePointId::parse(&charge_point) {
                        log::info!("{cp}: instance {by} takes this charge point over; closing and flushing it here.");
                        fleet.hand_over(&cp).await;
                    }
                    fleet
                        .reply(&reply_to, correlation, serde_json::json!({"flushed": true}))
                        .await;
                });
            }
            Control::Call {
                charge_point,
                call,
                reply_to,
                correlation,
            } => {
                let fleet = self.clone();
                actix::spawn(async move {
                    fleet
                        .0
                        .counters
                        .remote_calls_served
                        .fetch_add(1, Ordering::Relaxed);
                    let result: CallResult =
                        match (ChargePointId::parse(&charge_point), fleet.0.targets.get()) {
                            (Ok(cp), Some(targets)) => match targets.registry.get(&cp) {
                                Some(connection) => connection
                                    .actor
                                    .send(Call(call))
                                    .await
                                    .unwrap_or(Err(CallError::NotConnected)),
                                None => Err(CallError::NotConnected),
                            },
                            _ => Err(CallError::NotConnected),
                        };
                    let body = serde_json::to_value(&result).unwrap_or(Value::Null);
                    fleet.reply(&reply_to, correlation, body).await;
                });
            }
        }
    }

    /// Closes the local session of `cp` (if any) and puts everything this instance holds of
    /// it in Redis: its buffer and the writer's backlog (with the write-ahead log pins they
    /// carry), its roll-ups, its alert changes. Each step is bounded by the takeover wait.
    pub async fn hand_over(&self, cp: &ChargePointId) {
        let Some(targets) = self.0.targets.get() else {
            return;
        };
        let wait = self.0.settings.takeover_wait;
        if let Some(connection) = targets.registry.get(cp) {
            self.forget(cp, connection.session);
            self.0.counters.handovers.fetch_add(1, Ordering::Relaxed);
            let _ = tokio::time::timeout(wait, connection.actor.send(Handover)).await;
        }
        let _ =
            tokio::time::timeout(wait, targets.aggregator.send(FlushChargePoint(cp.clone()))).await;
        let _ = tokio::time::timeout(wait, targets.writer.send(Drain)).await;
        let _ = tokio::time::timeout(wait, targets.alerts.send(ReleaseAlerts(cp.clone()))).await;
    }

    /// Publishes an answer to a request.
    async fn reply(&self, channel: &str, correlation: u64, body: Value) {
        let message = Control::Reply { correlation, body };
        if let Err(error) = self.publish(channel, &message).await {
            log::warn!("Fleet: an answer to another instance was lost ({error}).");
        }
    }

    /// `PUBLISH`es a control message; the number of subscribers that got it.
    async fn publish(&self, channel: &str, message: &Control) -> Result<i64, ReadError> {
        let text = serde_json::to_string(message).unwrap_or_default();
        let mut conn = self.0.pool.get().await?;
        Ok(redis::cmd("PUBLISH")
            .arg(channel)
            .arg(text)
            .query_async(&mut conn)
            .await?)
    }

    /// Sends a request to `instance` and waits up to `wait` for its answer.
    async fn request(
        &self,
        instance: &str,
        make: impl FnOnce(u64, String) -> Control,
        wait: Duration,
    ) -> Result<Value, RequestError> {
        let correlation = self.0.next_correlation.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.0.waiting).insert(correlation, tx);
        let message = make(correlation, self.control_channel());
        let sent = self
            .publish(&keys::instance_control(instance), &message)
            .await;
        let result = match sent {
            Err(error) => Err(RequestError::Redis(error)),
            // On one server `PUBLISH` counts every subscriber; on a cluster only those on the
            // node that took it (the message still reaches every node's subscribers), so there
            // a 0 proves nothing and the answer's timeout decides.
            Ok(0) if !self.0.pool.is_cluster() => Err(RequestError::NoReceiver),
            Ok(_) => match tokio::time::timeout(wait, rx).await {
                Ok(Ok(body)) => Ok(body),
                _ => Err(RequestError::Timeout),
            },
        };
        lock(&self.0.waiting).remove(&correlation);
        result
    }

    /// The value of this instance's owner record for a session.
    fn owner_value(&self, session: u64, since: DateTime<Utc>, connected: bool) -> String {
        serde_json::to_string(&Owner {
            instance: self.id().to_owned(),
            incarnation: self.0.incarnation,
            session,
            since,
            connected,
        })
        .unwrap_or_default()
    }

    /// Claims `cp` for a new session here; the record it replaced, if any.
    pub async fn claim(
        &self,
        cp: &ChargePointId,
        session: u64,
    ) -> Result<Option<Owner>, ReadError> {
        let value = self.owner_value(session, Utc::now(), true);
        lock(&self.0.owned).insert(cp.clone(), (session, value.clone()));
        let mut conn = self.0.pool.get().await?;
        let previous: Option<String> = redis::cmd("SET")
            .arg(keys::owner(cp.as_str()))
            .arg(value)
            .arg("GET")
            .query_async(&mut conn)
            .await?;
        Ok(previous.and_then(|p| serde_json::from_str(&p).ok()))
    }

    /// Stops renewing the record of `session` (when it is the one held).
    fn forget(&self, cp: &ChargePointId, session: u64) -> Option<String> {
        let mut owned = lock(&self.0.owned);
        match owned.get(cp) {
            Some((held, _)) if *held == session => owned.remove(cp).map(|(_, value)| value),
            _ => None,
        }
    }

    /// Everything a new session of `cp` does before it starts: claim the charge point, ask
    /// the previous holder (another instance) to close and flush it, waiting at most
    /// `takeover_wait` for its acknowledgement, and restore the charge point's active alerts
    /// from Redis unless its session was already here (`held_here`), so an incident that
    /// goes on across the move is not raised again. Every step is bounded: a Redis that does
    /// not take the claim within [`CLAIM_TIMEOUT`] skips the rest (the session starts, and the
    /// next lease renewal writes its record), and the takeover and the restore wait
    /// `takeover_wait` at most each.
    pub async fn arrive(&self, cp: &ChargePointId, session: u64, held_here: bool) {
        let previous = match tokio::time::timeout(CLAIM_TIMEOUT, self.claim(cp, session)).await {
            Ok(Ok(previous)) => previous,
            // Redis is away or slow: nothing else here would get an answer either; the session
            // starts now, and the next renewal writes its record.
            Ok(Err(error)) => {
                self.0.unwritten.store(true, Ordering::SeqCst);
                log::warn!("{cp}: the owner record was not written ({error}); starting the session without it.");
                return;
            }
            Err(_) => {
                self.0.unwritten.store(true, Ordering::SeqCst);
                log::warn!("{cp}: Redis did not take the owner record within {CLAIM_TIMEOUT:?}; starting the session without it.");
                return;
            }
        };
        if let Some(previous) = previous.filter(|p| p.instance != self.id()) {
            self.take_over(cp, &previous).await;
        }
        if !held_here {
            if let Some(targets) = self.0.targets.get() {
                let wait = self.0.settings.takeover_wait;
                let _ = tokio::time::timeout(wait, targets.alerts.send(RestoreAlerts(cp.clone())))
                    .await;
            }
        }
    }

    /// Asks `previous`'s instance to close and flush `cp`, waiting at most `takeover_wait`.
    async fn take_over(&self, cp: &ChargePointId, previous: &Owner) {
        let by = self.id().to_owned();
        let request = |correlation, reply_to| Control::Takeover {
            charge_point: cp.as_str().to_owned(),
            by,
            reply_to,
            correlation,
        };
        match self
            .request(&previous.instance, request, self.0.settings.takeover_wait)
            .await
        {
            Ok(_) => {
                if previous.connected {
                    self.0.counters.takeovers.fetch_add(1, Ordering::Relaxed);
                    log::info!(
                        "{cp}: taken over from instance {}, which flushed it.",
                        previous.instance
                    );
                }
            }
            Err(RequestError::NoReceiver) => {
                log::info!(
                    "{cp}: instance {} that held it is gone; its write-ahead log keeps what it answered.",
                    previous.instance
                );
            }
            Err(error) => log::warn!(
                "{cp}: instance {} did not confirm its flush ({error}); going on without it.",
                previous.instance
            ),
        }
    }

    /// Ends this instance's hold on `cp` for `session`: the record becomes a "left" record
    /// for one lease (so a new session elsewhere asks this instance to flush its roll-ups),
    /// unless another session or instance has claimed it since.
    pub fn leave(&self, cp: &ChargePointId, session: u64) {
        let Some(value) = self.forget(cp, session) else {
            return;
        };
        let left = serde_json::from_str::<Owner>(&value)
            .map(|o| self.owner_value(o.session, o.since, false))
            .unwrap_or_default();
        let pool = self.0.pool.clone();
        let key = keys::owner(cp.as_str());
        let lease = millis(self.0.settings.lease);
        actix::spawn(async move {
            let Ok(mut conn) = pool.get().await else {
                return;
            };
            let _ = redis::cmd("EVAL")
                .arg(LEAVE_SCRIPT)
                .arg(1)
                .arg(key)
                .arg(value)
                .arg(left)
                .arg(lease)
                .query_async::<i64>(&mut conn)
                .await;
        });
    }

    /// The instance holding `cp`'s session, from its owner record (`None`: nobody).
    pub async fn holder(&self, cp: &ChargePointId) -> Result<Option<Owner>, ReadError> {
        Ok(self
            .holders(std::slice::from_ref(&cp.as_str().to_owned()))
            .await?
            .pop()
            .flatten())
    }

    /// [`Fleet::holder`] read through `pool` (a pool to the same Redis that the caller's
    /// thread drives, for the admin API's reads) instead of the fleet's own.
    pub async fn holder_via(
        &self,
        pool: &Pool,
        cp: &ChargePointId,
    ) -> Result<Option<Owner>, ReadError> {
        Ok(self
            .holders_via(pool, std::slice::from_ref(&cp.as_str().to_owned()))
            .await?
            .pop()
            .flatten())
    }

    /// The holders of several charge points (one `GET` each, pipelined: one key per command,
    /// so Redis Cluster routes each to its slot).
    pub async fn holders(&self, cps: &[String]) -> Result<Vec<Option<Owner>>, ReadError> {
        self.holders_via(&self.0.pool, cps).await
    }

    /// [`Fleet::holders`] read through `pool`.
    pub async fn holders_via(
        &self,
        pool: &Pool,
        cps: &[String],
    ) -> Result<Vec<Option<Owner>>, ReadError> {
        if cps.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = pool.get().await?;
        let mut pipe = redis::pipe();
        for cp in cps {
            pipe.cmd("GET").arg(keys::owner(cp));
        }
        let values: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
        Ok(values
            .into_iter()
            .zip(cps)
            .map(|(v, cp)| self.holder_in(cp, v.as_deref()))
            .collect())
    }

    /// The instance holding `cp`'s session according to `record`, the value of its owner key
    /// ([`keys::owner`]) read by the caller (`None`: no such key), as [`Fleet::holder`] would
    /// answer: lets a read fetch the record in its own pipeline instead of a round trip more.
    pub fn holder_in(&self, cp: &str, record: Option<&str>) -> Option<Owner> {
        record
            .and_then(|v| serde_json::from_str::<Owner>(v).ok())
            .filter(|o| self.holds(o, cp))
    }

    /// Runs `call` on the instance holding `cp` and answers as if it were local: not
    /// connected when no instance holds it (or the holder is gone), a timeout when the holder
    /// does not answer within `ocpp.call_timeout_secs` plus [`CALL_MARGIN`].
    pub async fn remote_call(
        &self,
        cp: &ChargePointId,
        call: ServerCall,
    ) -> Result<CallResult, ReadError> {
        let Some(owner) = self.holder(cp).await?.filter(|o| o.instance != self.id()) else {
            return Ok(Err(CallError::NotConnected));
        };
        self.0.counters.remote_calls.fetch_add(1, Ordering::Relaxed);
        let timeout = self.0.settings.call_timeout;
        let request = |correlation, reply_to| Control::Call {
            charge_point: cp.as_str().to_owned(),
            call,
            reply_to,
            correlation,
        };
        match self
            .request(&owner.instance, request, timeout + CALL_MARGIN)
            .await
        {
            Ok(body) => Ok(serde_json::from_value(body).unwrap_or_else(|error| {
                Err(CallError::BadResponse(format!(
                    "instance {} answered unreadably: {error}",
                    owner.instance
                )))
            })),
            Err(RequestError::NoReceiver) => Ok(Err(CallError::NotConnected)),
            Err(RequestError::Timeout) => {
                self.0
                    .counters
                    .remote_call_timeouts
                    .fetch_add(1, Ordering::Relaxed);
                Ok(Err(CallError::Timeout(timeout.as_secs())))
            }
            Err(RequestError::Redis(error)) => Err(error),
        }
    }

    /// Whether events are worth rendering for the rest of the fleet: another instance said
    /// within the last [`LISTENING_FOR`] that it has stream clients.
    pub fn publishing(&self) -> bool {
        self.0.wanted_until.load(Ordering::Relaxed) > Utc::now().timestamp_millis()
    }

    /// The event hub's client count: the first client makes this instance ask the others for
    /// their events at once (then every [`LISTENING_EVERY`] while any client stays).
    pub fn set_listeners(&self, clients: usize) {
        let before = self.0.listeners.swap(clients, Ordering::Relaxed);
        if before == 0 && clients > 0 {
            self.announce_listening();
        }
    }

    /// Queues a "listening" notice for the other instances.
    fn announce_listening(&self) {
        let payload = format!("{}\n-\n{LISTENING}\n", self.id());
        if self.0.events.try_send(payload).is_err() {
            self.0
                .counters
                .events_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Repeats the "listening" notice while the hub has clients.
    async fn listening_loop(self) {
        loop {
            tokio::time::sleep(LISTENING_EVERY).await;
            if self.0.stopping.load(Ordering::SeqCst) {
                return;
            }
            if self.0.listeners.load(Ordering::Relaxed) > 0 {
                self.announce_listening();
            }
        }
    }

    /// Queues one event for the rest of the fleet without waiting; dropped and counted when
    /// the queue is full.
    pub fn publish_event(&self, cp: &ChargePointId, event: &str, data: &str) {
        let payload = format!("{}\n{}\n{event}\n{data}", self.id(), cp.as_str());
        if self.0.events.try_send(payload).is_err() {
            self.0
                .counters
                .events_dropped
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Publishes queued events, up to [`EVENT_BATCH`] per pipeline; a failed pipeline's events
    /// are dropped (live events are not worth a backlog) and counted.
    async fn publish_loop(self, mut rx: mpsc::Receiver<String>) {
        let mut batch = Vec::with_capacity(EVENT_BATCH);
        while rx.recv_many(&mut batch, EVENT_BATCH).await > 0 {
            let count = batch.len() as u64;
            let mut pipe = redis::pipe();
            for payload in batch.drain(..) {
                pipe.cmd("PUBLISH")
                    .arg(keys::EVENTS_CHANNEL)
                    .arg(payload)
                    .ignore();
            }
            let sent = async {
                let mut conn = self.0.pool.get().await?;
                pipe.query_async::<()>(&mut conn).await?;
                Ok::<_, ReadError>(())
            };
            match sent.await {
                Ok(()) => self
                    .0
                    .counters
                    .events_published
                    .fetch_add(count, Ordering::Relaxed),
                Err(_) => self
                    .0
                    .counters
                    .events_dropped
                    .fetch_add(count, Ordering::Relaxed),
            };
        }
    }
}

impl OwnerRecords for Fleet {
    fn leave(&self, cp: &ChargePointId, session: u64) {
        Fleet::leave(self, cp, session);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::server_call::{CallReply, TriggerKind};

    #[test]
    fn control_messages_name_their_type_and_round_trip() {
        let call = Control::Call {
            charge_point: "CP-1".into(),
            call: ServerCall::Trigger {
                message: TriggerKind::MeterValues,
                connector_id: Some(1),
            },
            reply_to: keys::instance_control("a:8080"),
            correlation: 7,
        };
        let text = serde_json::to_string(&call).unwrap();
        assert!(text.starts_with(r#"{"type":"call","#), "{text}");
        match serde_json::from_str::<Control>(&text).unwrap() {
            Control::Call {
                charge_point,
                reply_to,
                correlation,
                ..
            } => {
                assert_eq!(charge_point, "CP-1");
                assert_eq!(reply_to, "ocpp:instance:a:8080:control");
                assert_eq!(correlation, 7);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn call_results_cross_instances_unchanged() {
        let results: Vec<CallResult> = vec![
            Ok(CallReply::Trigger {
                status: "Accepted".into(),
            }),
            Err(CallError::Refused {
                code: "NotSupported".into(),
                description: "no".into(),
            }),
            Err(CallError::Timeout(30)),
            Err(CallError::NotConnected),
            Err(CallError::Busy),
        ];
        for result in results {
            let value = serde_json::to_value(&result).unwrap();
            let back: CallResult = serde_json::from_value(value).unwrap();
            assert_eq!(back, result);
        }
    }

    #[test]
    fn owner_records_name_the_run() {
        let owner = Owner {
            instance: "b:8080".into(),
            incarnation: 1_700_000_000_000,
            session: 3,
            since: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            connected: true,
        };
        let text = serde_json::to_string(&owner).unwrap();
        assert_eq!(
            text,
            r#"{"instance":"b:8080","incarnation":1700000000000,"session":3,"since":"2023-11-14T22:13:20Z","connected":true}"#
        );
        assert_eq!(serde_json::from_str::<Owner>(&text).unwrap(), owner);
    }
}
