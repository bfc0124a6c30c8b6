//! `EventHub`: the fan-out behind `GET /api/v1/events`. It subscribes to the live stream
//! (samples, session events, alerts), renders each event once as a Server-Sent Events frame and
//! hands it to every client whose filter matches, through a bounded channel per client.
//!
//! While another instance has stream clients (see `actors::fleet`), every event is also
//! published on the fleet's events channel, and events of the other instances arrive as
//! [`RemoteEvent`]s: each client sees the whole fleet, every event once (an instance ignores
//! its own on the channel).
//!
//! A client that does not keep up is dropped the moment its channel is full: the hub never
//! waits for a client, and the stream never waits for the hub (its mailbox takes `do_send`), so a
//! slow consumer cannot slow ingest. Clients that left are noticed on the next frame or
//! keep-alive and forgotten.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::web::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc::{self, error::TrySendError};

use super::json;
use ::actors::exchange::{AlertState, SessionEvent};
use ::actors::fleet::{Fleet, RemoteEvent};
use ::actors::id::ChargePointId;
use ::actors::stream::{AlertNotice, SampleBatch, SessionNotice};

/// Frames a client may fall behind before it is dropped: enough for bursts (a charge point
/// replaying its queue), small enough that a stalled client costs little memory.
pub const CLIENT_CAPACITY: usize = 256;

/// How often an idle stream gets a comment line, so proxies and load balancers that close quiet
/// connections keep it open, and clients that left are noticed.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Tuning of the hub; constants in production, small values in tests.
#[derive(Debug, Clone, Copy)]
pub struct EventHubSettings {
    /// Frames queued per client before it is dropped.
    pub client_capacity: usize,
    /// Interval of the keep-alive comment.
    pub keep_alive: Duration,
}

impl Default for EventHubSettings {
    fn default() -> Self {
        EventHubSettings {
            client_capacity: CLIENT_CAPACITY,
            keep_alive: KEEP_ALIVE,
        }
    }
}

/// Counters shared with tests and operators; atomics so readers never wait on the hub.
#[derive(Debug, Default)]
pub struct EventHubCounters {
    /// Clients currently connected.
    pub clients: AtomicUsize,
    /// Clients dropped because they fell `client_capacity` frames behind.
    pub dropped_slow: AtomicU64,
    /// Frames handed to clients.
    pub frames_sent: AtomicU64,
}

/// A new client; answers the receiving end of its channel (the HTTP body streams from it).
#[derive(Debug, Message)]
#[rtype(result = "mpsc::Receiver<Bytes>")]
pub struct Join {
    /// Only this charge point's events, when set.
    pub charge_point: Option<ChargePointId>,
}

/// One connected client.
struct Client {
    /// Its `?charge_point=` filter.
    filter: Option<ChargePointId>,
    /// Bounded: a full channel means the client is too slow.
    tx: mpsc::Sender<Bytes>,
}

/// See the module documentation.
pub struct EventHub {
    /// Connected clients.
    clients: Vec<Client>,
    /// Limits and timings.
    settings: EventHubSettings,
    /// Shared counters.
    counters: Arc<EventHubCounters>,
    /// The fleet, which carries this instance's events to the others (`None` in unit tests).
    fleet: Option<Fleet>,
}

impl EventHub {
    /// A hub without clients; start it under `actix::Supervisor` and subscribe it to the stream
    /// (and hand it to the fleet for the other instances' events).
    pub fn new(
        settings: EventHubSettings,
        counters: Arc<EventHubCounters>,
        fleet: Option<Fleet>,
    ) -> Self {
        EventHub {
            clients: Vec::new(),
            settings,
            counters,
            fleet,
        }
    }

    /// Publishes the client count: the gauge, and the fleet (the other instances publish
    /// their events only while some instance has clients).
    fn counted_clients(&self) {
        self.counters
            .clients
            .store(self.clients.len(), Ordering::Relaxed);
        if let Some(fleet) = &self.fleet {
            fleet.set_listeners(self.clients.len());
        }
    }

    /// This instance's id, named in `connected` and `disconnected` events.
    fn instance(&self) -> Option<String> {
        self.fleet.as_ref().map(|f| f.id().to_owned())
    }

    /// Whether any client wants events of `charge_point`; lets the hub skip rendering JSON that
    /// nobody reads.
    fn wanted(&self, charge_point: &ChargePointId) -> bool {
        self.clients
            .iter()
            .any(|c| c.filter.as_ref().is_none_or(|f| f == charge_point))
    }

    /// Queues `frame` to every client that wants it (`charge_point` `None`: every client),
    /// dropping clients that are full or gone.
    fn broadcast(&mut self, charge_point: Option<&ChargePointId>, frame: Bytes) {
        let counters = &self.counters;
        self.clients.retain(|client| {
            if let (Some(cp), Some(filter)) = (charge_point, &client.filter) {
                if cp != filter {
                    return true;
                }
            }
            match client.tx.try_send(frame.clone()) {
                Ok(()) => {
                    counters.frames_sent.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(TrySendError::Full(_)) => {
                    counters.dropped_slow.fetch_add(1, Ordering::Relaxed);
                    log::warn!(
                        "{}: event stream client dropped: it fell {} events behind.",
                        client
                            .filter
                            .as_ref()
                            .map_or("all charge points", ChargePointId::as_str),
                        client.tx.max_capacity()
                    );
                    false
                }
                Err(TrySendError::Closed(_)) => false,
            }
        });
        self.counted_clients();
    }

    /// Renders and broadcasts one event of `charge_point`, if anybody wants it here, and
    /// hands it to the fleet when other instances are alive (their clients may want it).
    fn publish(&mut self, charge_point: &ChargePointId, event: &str, data: impl FnOnce() -> Value) {
        let fleet = self.fleet.as_ref().filter(|f| f.publishing());
        let local = self.wanted(charge_point);
        if !local && fleet.is_none() {
            return;
        }
        let data = data().to_string();
        if let Some(fleet) = fleet {
            fleet.publish_event(charge_point, event, &data);
        }
        if local {
            self.broadcast(Some(charge_point), sse_frame(event, &data));
        }
    }
}

/// One SSE frame: `event: <name>`, one `data:` line of compact JSON (which has no newlines), and
/// the blank line that ends it.
pub fn sse_frame(event: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

impl Actor for EventHub {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.settings.keep_alive, |hub, _| {
            hub.broadcast(None, Bytes::from_static(b": keep-alive\n\n"));
        });
    }
}

impl actix::Supervised for EventHub {
    fn restarting(&mut self, _: &mut Self::Context) {
        log::warn!("Event hub restarting with {} clients.", self.clients.len());
    }
}

impl Handler<Join> for EventHub {
    type Result = MessageResult<Join>;

    fn handle(&mut self, join: Join, _: &mut Self::Context) -> Self::Result {
        let (tx, rx) = mpsc::channel(self.settings.client_capacity.max(1));
        // An opening comment gets the response under way at once, before the first event.
        let _ = tx.try_send(Bytes::from_static(b": ocpp-meter events\n\n"));
        self.clients.push(Client {
            filter: join.charge_point,
            tx,
        });
        self.counted_clients();
        MessageResult(rx)
    }
}

impl Handler<SampleBatch> for EventHub {
    type Result = ();

    fn handle(&mut self, batch: SampleBatch, _: &mut Self::Context) {
        self.publish(&batch.charge_point, "sample", || {
            json!({
                "charge_point_id": batch.charge_point.as_str(),
                "samples": batch.samples.iter().map(json::sample).collect::<Vec<_>>(),
            })
        });
    }
}

impl Handler<SessionNotice> for EventHub {
    type Result = ();

    fn handle(&mut self, notice: SessionNotice, _: &mut Self::Context) {
        let id = notice.charge_point.as_str();
        let at = json::time(notice.at);
        let instance = self.instance();
        match &notice.event {
            SessionEvent::Connected => self.publish(
                &notice.charge_point,
                "connected",
                || json!({"charge_point_id": id, "at": at, "instance": instance}),
            ),
            SessionEvent::Disconnected => self.publish(
                &notice.charge_point,
                "disconnected",
                || json!({"charge_point_id": id, "at": at, "instance": instance}),
            ),
            SessionEvent::Status(report) => self.publish(&notice.charge_point, "status", || {
                json!({
                    "charge_point_id": id,
                    "at": at,
                    "connector_id": report.connector_id,
                    "status": report.status,
                    "error_code": report.error_code,
                    "info": report.info,
                    "timestamp": report.timestamp.map(json::time),
                    "vendor_id": report.vendor_id,
                    "vendor_error_code": report.vendor_error_code,
                })
            }),
            // Not part of the event stream's contract (issue 3); transactions are read from
            // `/api/v1/transactions`.
            SessionEvent::TransactionStarted { .. }
            | SessionEvent::TransactionStopped { .. }
            | SessionEvent::SampleInterval { .. } => {}
        }
    }
}

impl Handler<RemoteEvent> for EventHub {
    type Result = ();

    fn handle(&mut self, remote: RemoteEvent, _: &mut Self::Context) {
        if self.wanted(&remote.charge_point) {
            let frame = sse_frame(&remote.event, &remote.data);
            self.broadcast(Some(&remote.charge_point), frame);
        }
    }
}

impl Handler<AlertNotice> for EventHub {
    type Result = ();

    fn handle(&mut self, AlertNotice(alert): AlertNotice, _: &mut Self::Context) {
        let event = match alert.state {
            AlertState::Active => "alert",
            AlertState::Cleared => "alert_cleared",
        };
        let charge_point = alert.charge_point_id.clone();
        self.publish(&charge_point, event, || {
            serde_json::to_value(&alert).unwrap_or(Value::Null)
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn id(text: &str) -> ChargePointId {
        ChargePointId::parse(text).unwrap()
    }

    async fn next_frame(rx: &mut mpsc::Receiver<Bytes>) -> String {
        let frame = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("a frame within 5 s")
            .expect("channel open");
        String::from_utf8(frame.to_vec()).unwrap()
    }

    #[actix_web::test]
    async fn clients_get_their_events_and_keep_alives() {
        let counters = Arc::new(EventHubCounters::default());
        let settings = EventHubSettings {
            client_capacity: 8,
            keep_alive: Duration::from_millis(20),
        };
        let hub = EventHub::new(settings, counters.clone(), None).start();
        let mut all = hub.send(Join { charge_point: None }).await.unwrap();
        let mut one = hub
            .send(Join {
                charge_point: Some(id("B")),
            })
            .await
            .unwrap();
        assert_eq!(counters.clients.load(Ordering::Relaxed), 2);
        assert!(next_frame(&mut all).await.starts_with(':'));
        assert!(next_frame(&mut one).await.starts_with(':'));
        for cp in ["A", "B"] {
            hub.do_send(SessionNotice {
                charge_point: id(cp),
                event: SessionEvent::Connected,
                at: chrono::Utc::now(),
            });
        }
        let first = next_frame(&mut all).await;
        assert!(first.starts_with("event: connected\ndata: {"), "{first}");
        assert!(first.contains(r#""charge_point_id":"A""#), "{first}");
        assert!(next_frame(&mut all)
            .await
            .contains(r#""charge_point_id":"B""#));
        let filtered = next_frame(&mut one).await;
        assert!(filtered.contains(r#""charge_point_id":"B""#), "{filtered}");
        assert_eq!(next_frame(&mut one).await, ": keep-alive\n\n");
        drop(one);
        let gone = actix_web::rt::time::timeout(Duration::from_secs(5), async {
            while counters.clients.load(Ordering::Relaxed) != 1 {
                let _ = next_frame(&mut all).await;
            }
        })
        .await;
        assert!(gone.is_ok(), "a client that left is forgotten");
    }

    #[actix_web::test]
    async fn a_full_client_is_dropped() {
        let counters = Arc::new(EventHubCounters::default());
        let settings = EventHubSettings {
            client_capacity: 2,
            keep_alive: Duration::from_secs(3600),
        };
        let hub = EventHub::new(settings, counters.clone(), None).start();
        let _never_read = hub.send(Join { charge_point: None }).await.unwrap();
        for _ in 0..3 {
            hub.do_send(SessionNotice {
                charge_point: id("A"),
                event: SessionEvent::Disconnected,
                at: chrono::Utc::now(),
            });
        }
        // The join's comment and one event fill the channel; the next event drops the client.
        let joined = hub.send(Join { charge_point: None }).await.unwrap();
        drop(joined);
        assert_eq!(counters.dropped_slow.load(Ordering::Relaxed), 1);
        assert_eq!(counters.clients.load(Ordering::Relaxed), 1);
    }
}
