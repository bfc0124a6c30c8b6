//! The live sample stream: every batch a charge point reports is fanned out to the subscribers
//! (roll-ups, alert rules, live feeds) before it is buffered, so they see it the same millisecond.

use std::sync::{Arc, RwLock};

use actix::prelude::*;

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

/// Cloneable handle to the stream: subscribers hand over their `Recipient`, publishers call
/// [`SampleStream::publish`]. Wired explicitly (no global broker) so the data flow is visible and
/// every test gets its own.
#[derive(Clone, Default)]
pub struct SampleStream {
    /// Current subscribers; read on every publish, written only at start-up.
    subscribers: Arc<RwLock<Vec<Recipient<SampleBatch>>>>,
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

    /// Whether anybody listens; lets publishers skip building batches nobody reads.
    pub fn has_subscribers(&self) -> bool {
        self.subscribers
            .read()
            .map(|s| !s.is_empty())
            .unwrap_or(false)
    }
}
