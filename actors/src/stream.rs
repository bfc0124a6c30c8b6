//! The live sample stream: every batch a charge point reports is fanned out to the subscribers
//! (roll-ups, alert rules, live feeds) before it is buffered, so they see it the same millisecond.
//! Session events (connect, disconnect, status, transactions) travel beside it, for subscribers
//! that need context (stale-data rules need to know which transactions are open) or show it.
//! Alerts raised and cleared go out the same way.
//!
//! The three messages it carries ([`SampleBatch`], [`SessionNotice`], [`AlertNotice`]) are
//! declared here rather than beside an actor: any number of subscribers handle them, and the
//! stream is the one way they travel.

use std::sync::{Arc, RwLock};

use actix::prelude::*;

use chrono::{DateTime, Utc};

use crate::backlog::Backlog;
use crate::exchange::{Alert, SessionEvent};
use crate::id::ChargePointId;
use crate::sample::Sample;
use crate::wal::WalPin;

/// The samples of one request of one charge point, shared by all subscribers without copying.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SampleBatch {
    /// Who reported them.
    pub charge_point: ChargePointId,
    /// The readings, normalised.
    pub samples: Arc<[Sample]>,
    /// The write-ahead log's hold on these samples for the roll-ups: the aggregator keeps it
    /// until its flush is applied, every other subscriber drops it with the batch.
    pub wal: Option<Arc<WalPin>>,
    /// Recorded while the charge point was offline ([`crate::sample::Readings::offline`]):
    /// stored and rolled up like any other, but the live alert rules skip them.
    pub recorded_offline: bool,
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

/// An alert was raised or cleared (its `state` says which); sent to every alert subscriber
/// (event stream, webhook) the moment it happens.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct AlertNotice(pub Alert);

/// Cloneable handle to the stream: subscribers hand over their `Recipient`, publishers call
/// [`SampleStream::publish`]. Wired explicitly (no global broker) so the data flow is visible and
/// every test gets its own.
#[derive(Clone, Default)]
pub struct SampleStream {
    /// Subscribers to sample batches.
    subscribers: Subscribers<SampleBatch>,
    /// Subscribers that write each batch to Redis later and count it off [`Self::rollups`]
    /// once written (the roll-up aggregator).
    tracked_subscribers: Subscribers<SampleBatch>,
    /// Batches sent to the tracked subscribers and not yet in Redis, per charge point.
    rollups: Arc<Backlog>,
    /// Subscribers to session events.
    event_subscribers: Subscribers<SessionNotice>,
    /// Subscribers to alerts raised and cleared.
    alert_subscribers: Subscribers<AlertNotice>,
    /// Subscribers to samples after the alert rules have seen them.
    checked_subscribers: Subscribers<SampleBatch>,
    /// Subscribers to session events after the alert supervisor has seen them.
    checked_event_subscribers: Subscribers<SessionNotice>,
}

/// One list of recipients of `M`: read on every publish, written only at start-up.
struct Subscribers<M: Message<Result = ()> + Send>(Arc<RwLock<Vec<Recipient<M>>>>);

impl<M: Message<Result = ()> + Send> Clone for Subscribers<M> {
    fn clone(&self) -> Self {
        Subscribers(self.0.clone())
    }
}

impl<M: Message<Result = ()> + Send> Default for Subscribers<M> {
    fn default() -> Self {
        Subscribers(Arc::default())
    }
}

impl<M: Message<Result = ()> + Send + Clone + 'static> Subscribers<M> {
    fn add(&self, recipient: Recipient<M>) {
        if let Ok(mut subscribers) = self.0.write() {
            subscribers.push(recipient);
        }
    }

    /// Sends to every subscriber without waiting; one that has stopped is skipped (its
    /// supervisor restarts it).
    fn send(&self, message: M) {
        let Ok(subscribers) = self.0.read() else {
            return;
        };
        for subscriber in subscribers.iter() {
            subscriber.do_send(message.clone());
        }
    }

    fn is_empty(&self) -> bool {
        self.0.read().map(|s| s.is_empty()).unwrap_or(true)
    }
}

impl Subscribers<SampleBatch> {
    /// [`Subscribers::send`], counting the batch in `backlog` before each send (the subscriber
    /// counts it off once Redis has it).
    fn send_counted(&self, batch: &SampleBatch, backlog: &Backlog) {
        let Ok(subscribers) = self.0.read() else {
            return;
        };
        for subscriber in subscribers.iter() {
            backlog.add(&batch.charge_point);
            subscriber.do_send(batch.clone());
        }
    }
}

impl SampleStream {
    /// Adds a subscriber; it receives every batch published from now on.
    pub fn subscribe(&self, recipient: Recipient<SampleBatch>) {
        self.subscribers.add(recipient);
    }

    /// Adds a subscriber that writes every batch to Redis later, and calls
    /// [`Backlog::done`] on [`SampleStream::rollups`] for each batch once Redis has it (or never
    /// will); each batch is counted there before it is sent.
    pub fn subscribe_tracked(&self, recipient: Recipient<SampleBatch>) {
        self.tracked_subscribers.add(recipient);
    }

    /// Sends a batch to every subscriber without waiting.
    pub fn publish(&self, batch: SampleBatch) {
        self.tracked_subscribers.send_counted(&batch, &self.rollups);
        self.subscribers.send(batch);
    }

    /// What the tracked subscribers (the roll-up aggregator) have not yet written, per charge
    /// point: shared with them, and with the reads that would otherwise ask them.
    pub fn rollups(&self) -> Arc<Backlog> {
        self.rollups.clone()
    }

    /// Adds a subscriber to session events.
    pub fn subscribe_events(&self, recipient: Recipient<SessionNotice>) {
        self.event_subscribers.add(recipient);
    }

    /// Sends a session event to every event subscriber without waiting.
    pub fn publish_event(&self, notice: SessionNotice) {
        self.event_subscribers.send(notice);
    }

    /// Adds a subscriber to alerts (event stream, webhook).
    pub fn subscribe_alerts(&self, recipient: Recipient<AlertNotice>) {
        self.alert_subscribers.add(recipient);
    }

    /// Sends an alert notice to every alert subscriber without waiting.
    pub fn publish_alert(&self, notice: AlertNotice) {
        self.alert_subscribers.send(notice);
    }

    /// Adds a subscriber to the checked feed: every sample batch and session event, in the
    /// order they happened, each forwarded by the alert supervisor after it has applied its
    /// rules, so that an alert arrives after the sample that raised it and before the next one.
    /// Live displays subscribe here; storage and roll-ups take the direct feed.
    pub fn subscribe_checked(
        &self,
        samples: Recipient<SampleBatch>,
        events: Recipient<SessionNotice>,
    ) {
        self.checked_subscribers.add(samples);
        self.checked_event_subscribers.add(events);
    }

    /// Forwards a batch the alert rules have seen (called by the alert supervisor).
    pub fn publish_checked(&self, batch: SampleBatch) {
        self.checked_subscribers.send(batch);
    }

    /// Forwards a session event the alert supervisor has seen.
    pub fn publish_checked_event(&self, notice: SessionNotice) {
        self.checked_event_subscribers.send(notice);
    }

    /// Whether anybody listens; lets publishers skip building batches nobody reads.
    pub fn has_subscribers(&self) -> bool {
        !self.subscribers.is_empty() || !self.tracked_subscribers.is_empty()
    }
}
