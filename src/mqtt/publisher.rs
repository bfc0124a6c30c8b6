//! `MqttPublisher`: the actor that turns the live stream's sample batches and alert notices into
//! retained QoS 1 messages and keeps the broker connection alive.
//!
//! The stream hands it messages with `do_send`, so ingest never waits for it. Each becomes a
//! document at once (the batch, and the write-ahead log's hold on it, is not kept) and joins a
//! queue of at most `max_queue` messages that drops its oldest when full. While connected, up
//! to [`WINDOW`] messages are handed to rumqttc at a time and kept until the broker
//! acknowledges them; a connection that breaks puts them back at the head of the queue, so
//! they are sent again after the reconnect (QoS 1 is at least once: a retained value is never
//! older than one sent before it). The connection's events arrive as a stream polled in the
//! actor's own context, which waits between failed attempts from 100 ms doubling up to
//! `reconnect_max`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ::actors::id::ChargePointId;
use ::actors::stream::{AlertNotice, SampleBatch};
use actix::prelude::*;
use futures_util::Stream;
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS};

use super::payload::{self, LatestValues};
use super::{MqttSettings, MqttStats, MAX_PAYLOAD_BYTES};

/// Messages handed to rumqttc and not yet acknowledged, at most: enough to keep a broker link
/// busy, few enough that a broken connection has little to send again.
pub const WINDOW: usize = 64;

/// First wait before reconnecting; doubles up to `reconnect_max`.
const RECONNECT_INITIAL: Duration = Duration::from_millis(100);

/// One message to publish.
#[derive(Debug, Clone)]
struct Outgoing {
    /// Full topic name.
    topic: String,
    /// JSON document.
    payload: Vec<u8>,
}

/// What the broker connection reports, one event or error at a time.
type Events = Pin<Box<dyn Stream<Item = Result<Event, ConnectionError>>>>;

/// See the module documentation.
pub struct MqttPublisher {
    /// Configuration.
    settings: MqttSettings,
    /// Counters shared with `/metrics`.
    stats: Arc<MqttStats>,
    /// Hands messages to the connection (made in `started`, anew after a restart).
    client: Option<AsyncClient>,
    /// A broker session is up (CONNACK received, no error since).
    connected: bool,
    /// Messages waiting for the connection, oldest first.
    queue: VecDeque<Outgoing>,
    /// Messages handed to rumqttc, not yet acknowledged, oldest first.
    inflight: VecDeque<Outgoing>,
    /// Charge points whose discovery messages were queued since the last (re)connect: a broker
    /// that restarted without persistence lost them, so every charge point is announced again
    /// when next seen after a reconnect.
    announced: HashSet<ChargePointId>,
    /// Newest value per measurand of each charge point seen, for the meter documents' `values`.
    latest: HashMap<ChargePointId, LatestValues>,
    /// Messages dropped since the queue last had room, for one log line per outage.
    dropping: u64,
}

impl MqttPublisher {
    /// A publisher for `settings`; start it under `actix::Supervisor` and subscribe it to the
    /// stream's sample batches and alerts.
    pub fn new(settings: MqttSettings, stats: Arc<MqttStats>) -> MqttPublisher {
        MqttPublisher {
            settings,
            stats,
            client: None,
            connected: false,
            queue: VecDeque::new(),
            inflight: VecDeque::new(),
            announced: HashSet::new(),
            latest: HashMap::new(),
            dropping: 0,
        }
    }

    /// The connection's options: clean session (nothing is kept on the broker between
    /// connections; the queue here is what survives a reconnect), a window of [`WINDOW`].
    fn options(&self) -> MqttOptions {
        let s = &self.settings;
        let mut options = MqttOptions::new(s.client_id.clone(), s.host.clone(), s.port);
        options
            .set_keep_alive(s.keep_alive)
            .set_clean_session(true)
            .set_inflight(u16::try_from(WINDOW).unwrap_or(u16::MAX))
            .set_max_packet_size(64 * 1024, MAX_PAYLOAD_BYTES + 64 * 1024);
        if !s.username.is_empty() {
            options.set_credentials(s.username.clone(), s.password.clone());
        }
        options
    }

    /// The connection's events, polled forever; after an error the next poll (a reconnect)
    /// waits first, from [`RECONNECT_INITIAL`] doubling up to `reconnect_max`.
    fn events(eventloop: EventLoop, reconnect_max: Duration) -> Events {
        let state = (eventloop, None::<Duration>);
        Box::pin(futures_util::stream::unfold(
            state,
            move |(mut eventloop, wait)| async move {
                if let Some(wait) = wait {
                    tokio::time::sleep(wait).await;
                }
                let event = eventloop.poll().await;
                let next = match &event {
                    Ok(_) => None,
                    Err(_) => Some(wait.map_or(RECONNECT_INITIAL, |w| {
                        (w * 2).min(reconnect_max.max(RECONNECT_INITIAL))
                    })),
                };
                Some((event, (eventloop, next)))
            },
        ))
    }

    /// Queues one message, dropping the oldest waiting one when the queue is full.
    fn enqueue(&mut self, topic: String, document: &serde_json::Value) {
        let payload = document.to_string().into_bytes();
        // Config validation and `payload::topic_level` keep wildcards out of every topic; one
        // that slipped through would be refused by rumqttc and block the queue's head.
        if !rumqttc::valid_topic(&topic) {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            log::error!("MQTT: {topic:?} is not a valid topic name; message dropped.");
            return;
        }
        if payload.len() > MAX_PAYLOAD_BYTES {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            log::warn!(
                "MQTT: a {} byte message to {topic} is larger than {MAX_PAYLOAD_BYTES} bytes; dropped.",
                payload.len()
            );
            return;
        }
        self.queue.push_back(Outgoing { topic, payload });
        self.trim();
        self.pump();
    }

    /// Drops the oldest waiting messages past `max_queue` (in flight ones count too).
    fn trim(&mut self) {
        let max = self.settings.max_queue.max(1);
        while self.queue.len() + self.inflight.len() > max {
            let Some(oldest) = self.queue.pop_front() else {
                break;
            };
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            if self.dropping == 0 {
                log::warn!(
                    "MQTT: {max} messages wait for the broker at {}:{} (mqtt.max_queue); dropping the oldest, from {} on, until it takes them.",
                    self.settings.host,
                    self.settings.port,
                    oldest.topic
                );
            }
            self.dropping += 1;
        }
        self.count_queued();
    }

    /// Hands waiting messages to the connection while it is up and the window has room.
    fn pump(&mut self) {
        let Some(client) = &self.client else {
            return;
        };
        while self.connected && self.inflight.len() < WINDOW {
            let Some(message) = self.queue.pop_front() else {
                break;
            };
            let sent = client.try_publish(
                message.topic.clone(),
                QoS::AtLeastOnce,
                true,
                message.payload.clone(),
            );
            match sent {
                Ok(()) => self.inflight.push_back(message),
                Err(error) => {
                    // rumqttc's channel still holds messages from before a reconnect; the next
                    // acknowledgement makes room.
                    log::debug!("MQTT: {} not handed over yet ({error}).", message.topic);
                    self.queue.push_front(message);
                    break;
                }
            }
        }
        if self.queue.len() + self.inflight.len() < self.settings.max_queue && self.dropping > 0 {
            log::warn!(
                "MQTT: the queue has room again; {} messages were dropped.",
                self.dropping
            );
            self.dropping = 0;
        }
        self.count_queued();
    }

    fn count_queued(&self) {
        let queued = (self.queue.len() + self.inflight.len()) as u64;
        self.stats.queued.store(queued, Ordering::Relaxed);
    }

    /// The connection broke or could not be made: what was in flight goes back to the head of
    /// the queue, in order, to be sent again.
    fn disconnected(&mut self, error: &ConnectionError) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        if self.connected {
            log::warn!(
                "MQTT: lost the broker at {}:{} ({error}); reconnecting, {} messages wait.",
                self.settings.host,
                self.settings.port,
                self.queue.len() + self.inflight.len()
            );
        } else {
            log::debug!(
                "MQTT: cannot connect to the broker at {}:{} ({error}).",
                self.settings.host,
                self.settings.port
            );
        }
        self.connected = false;
        self.stats.connected.store(0, Ordering::Relaxed);
        while let Some(message) = self.inflight.pop_back() {
            self.queue.push_front(message);
        }
        self.trim();
    }
}

impl Actor for MqttPublisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (client, eventloop) = AsyncClient::new(self.options(), WINDOW);
        self.client = Some(client);
        self.connected = false;
        self.stats.connected.store(0, Ordering::Relaxed);
        // After a restart, whatever the old connection held is sent again.
        while let Some(message) = self.inflight.pop_back() {
            self.queue.push_front(message);
        }
        ctx.add_stream(Self::events(eventloop, self.settings.reconnect_max));
        log::info!(
            "MQTT: publishing to {}:{} under {}/.",
            self.settings.host,
            self.settings.port,
            self.settings.topic_prefix
        );
    }
}

impl Supervised for MqttPublisher {
    fn restarting(&mut self, _: &mut Self::Context) {
        log::warn!("MQTT publisher restarting.");
    }
}

impl StreamHandler<Result<Event, ConnectionError>> for MqttPublisher {
    fn handle(&mut self, event: Result<Event, ConnectionError>, _: &mut Self::Context) {
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                log::info!(
                    "MQTT: connected to the broker at {}:{}; {} messages wait.",
                    self.settings.host,
                    self.settings.port,
                    self.queue.len()
                );
                self.connected = true;
                self.stats.connected.store(1, Ordering::Relaxed);
                self.announced.clear();
                self.pump();
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                self.inflight.pop_front();
                self.stats.published.fetch_add(1, Ordering::Relaxed);
                self.pump();
            }
            Ok(_) => {}
            Err(error) => self.disconnected(&error),
        }
    }

    /// The event stream never ends; if it did, the actor would stop and its supervisor would
    /// not restart it, so this keeps it running on a fresh connection instead.
    fn finished(&mut self, ctx: &mut Self::Context) {
        log::error!("MQTT: the connection's event loop ended; starting a new one.");
        Actor::started(self, ctx);
    }
}

impl Handler<SampleBatch> for MqttPublisher {
    type Result = ();

    fn handle(&mut self, batch: SampleBatch, _: &mut Self::Context) {
        if batch.samples.is_empty() {
            return;
        }
        let cp = batch.charge_point;
        let s = &self.settings;
        if !s.discovery_prefix.is_empty() && self.announced.insert(cp.clone()) {
            let messages = payload::discovery(&s.discovery_prefix, &s.topic_prefix, &cp);
            for (topic, config) in messages {
                self.enqueue(topic, &config);
            }
        }
        let latest = self.latest.entry(cp.clone()).or_default();
        latest.update(&batch.samples);
        let document = payload::meter(&cp, &batch.samples, latest);
        self.enqueue(
            payload::meter_topic(&self.settings.topic_prefix, &cp),
            &document,
        );
    }
}

impl Handler<AlertNotice> for MqttPublisher {
    type Result = ();

    fn handle(&mut self, AlertNotice(alert): AlertNotice, _: &mut Self::Context) {
        let topic = payload::alert_topic(&self.settings.topic_prefix, &alert.charge_point_id);
        self.enqueue(topic, &payload::alert(&alert));
    }
}
