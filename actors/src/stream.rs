//! The live sample stream: every batch a charge point reports is fanned out to the subscribers
//! (roll-ups, alert rules, live feeds) before it is buffered, so they see it the same millisecond.
//! Session events (connect, disconnect, status, transactions) travel beside it, for subscribers
//! that need context (stale-data rules need to know which transactions are open) or show it.

use std::sync::{Arc, RwLock};

use actix::prelude::*;

use chrono::{DateTime, Utc};

use crate::alerts::AlertNotice;
use crate::charge_point::StatusReport;
use crate::id::ChargePointId;
use crate::sample::Sample;

/// The samples of one request of one charge point, shared by all subscribers without copying.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SampleBatch {
    /// Who reported them.
    pub charge_point: ChargePointId,
    /// The readings, normalised.
    pub samples: Arc<[Sample]>,
}

/// Something that happened to a charge point's session, other than samples.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// A session opened.
    Connected,
    /// The session closed.
    Disconnected,
    /// A connector reported a status.
    Status(StatusReport),
    /// A transaction started.
    TransactionStarted {
        /// Server-assigned id.
        transaction_id: i32,
        /// Connector it runs on.
        connector_id: u32,
        /// Register at start, Wh.
        meter_start: i64,
    },
    /// A transaction stopped.
    TransactionStopped {
        /// Server-assigned id.
        transaction_id: i32,
        /// Connector it ran on, when this session saw it start.
        connector_id: Option<u32>,
        /// Register at stop, Wh.
        meter_stop: i64,
    },
}

/// A [`SessionEvent`] of one charge point, with when the server saw it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SessionNotice {
    /// Whose event.
    pub charge_point: ChargePointId,
    /// What happened.
    pub event: SessionEvent,
    /// When the server saw it.
    pub at: DateTime<Utc>,
}

/// Cloneable handle to the stream: subscribers hand over their `Recipient`, publishers call
/// [`SampleStream::publish`]. Wired explicitly (no global broker) so the data flow is visible and
/// every test gets its own.
#[derive(Clone, Default)]
pub struct SampleStream {
    /// Current subscribers; read on every publish, written only at start-up.
    subscribers: Arc<RwLock<Vec<Recipient<SampleBatch>>>>,
    /// Subscribers to session events.
    event_subscribers: Arc<RwLock<Vec<Recipient<SessionNotice>>>>,
    /// Subscribers to alerts raised and cleared.
    alert_subscribers: Arc<RwLock<Vec<Recipient<AlertNotice>>>>,
}

impl SampleStream {
    /// Adds a subscriber; it receives every batch published from now on.
    pub fn subscribe(&self, recipient: Recipient<SampleBatch>) {
        if let Ok(mut subscribers) = self.subscribers.write() {
            subscribers.push(recipient);
        }
    }

    /// Sends a batch to every subscriber without waiting; a subscriber that has stopped is
    /// skipped (its supervisor restarts it).
    pub fn publish(&self, batch: SampleBatch) {
        let Ok(subscribers) = self.subscribers.read() else {
            return;
        };
        for subscriber in subscribers.iter() {
            subscriber.do_send(batch.clone());
        }
    }

    /// Adds a subscriber to session events.
    pub fn subscribe_events(&self, recipient: Recipient<SessionNotice>) {
        if let Ok(mut subscribers) = self.event_subscribers.write() {
            subscribers.push(recipient);
        }
    }

    /// Sends a session event to every event subscriber without waiting.
    pub fn publish_event(&self, notice: SessionNotice) {
        let Ok(subscribers) = self.event_subscribers.read() else {
            return;
        };
        for subscriber in subscribers.iter() {
            subscriber.do_send(notice.clone());
        }
    }

    /// Adds a subscriber to alerts (event stream, webhook).
    pub fn subscribe_alerts(&self, recipient: Recipient<AlertNotice>) {
        if let Ok(mut subscribers) = self.alert_subscribers.write() {
            subscribers.push(recipient);
        }
    }

    /// Sends an alert notice to every alert subscriber without waiting.
    pub fn publish_alert(&self, notice: AlertNotice) {
        let Ok(subscribers) = self.alert_subscribers.read() else {
            return;
        };
        for subscriber in subscribers.iter() {
            subscriber.do_send(notice.clone());
        }
    }

    /// Whether anybody listens; lets publishers skip building batches nobody reads.
    pub fn has_subscribers(&self) -> bool {
        self.subscribers
            .read()
            .map(|s| !s.is_empty())
            .unwrap_or(false)
    }
}
