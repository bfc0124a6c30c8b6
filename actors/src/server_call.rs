//! Calls the central system makes to a charge point (TriggerMessage, GetConfiguration,
//! ChangeConfiguration), in domain terms, and the per-session queue that keeps at most one of
//! them outstanding, as OCPP-J requires of each direction.
//!
//! The `ChargePointActor` owns a [`CallQueue`]: callers send it [`Call`], it hands the next call
//! to the connection as `SessionCommand::Call` with a fresh uniqueId, and the connection reports
//! the charge point's answer back with [`CallAnswered`](crate::charge_point::CallAnswered). A
//! call not answered within `ocpp.call_timeout_secs` fails with [`CallError::Timeout`] and the
//! next one goes out.
//!
//! [`Call`] is the one message declared away from the actor that handles it: the boot metering
//! run, which that actor starts, sends it too, so it lives here with [`ServerCall`] and
//! [`CallQueue`], below both.

use std::collections::VecDeque;

use actix::prelude::*;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// Most calls waiting behind the outstanding one per charge point; more are refused
/// ([`CallError::Busy`]) so a stuck charge point cannot make the server hoard requests.
pub const MAX_QUEUED_CALLS: usize = 16;

/// The messages a charge point can be asked to send with TriggerMessage (those this server
/// has a use for: fresh readings, statuses, a heartbeat, a boot notification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TriggerKind {
    /// MeterValues: fresh readings now.
    MeterValues,
    /// StatusNotification of one or all connectors.
    StatusNotification,
    /// Heartbeat.
    Heartbeat,
    /// BootNotification (which also re-runs the boot metering profile).
    BootNotification,
}

impl TriggerKind {
    /// The OCPP spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::MeterValues => "MeterValues",
            TriggerKind::StatusNotification => "StatusNotification",
            TriggerKind::Heartbeat => "Heartbeat",
            TriggerKind::BootNotification => "BootNotification",
        }
    }
}

/// A request from the central system to the charge point; serialisable so that an instance
/// can route it to the instance holding the charge point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerCall {
    /// TriggerMessage.
    Trigger {
        /// What the charge point should send.
        message: TriggerKind,
        /// The connector it concerns, when not the whole charge point.
        connector_id: Option<u32>,
    },
    /// GetConfiguration; no keys asks for every key.
    GetConfiguration {
        /// Keys asked for.
        keys: Vec<String>,
    },
    /// ChangeConfiguration of one key.
    ChangeConfiguration {
        /// The key.
        key: String,
        /// Its new value.
        value: String,
    },
}

impl ServerCall {
    /// The OCPP action name, for logs.
    pub fn action(&self) -> &'static str {
        match self {
            ServerCall::Trigger { .. } => "TriggerMessage",
            ServerCall::GetConfiguration { .. } => "GetConfiguration",
            ServerCall::ChangeConfiguration { .. } => "ChangeConfiguration",
        }
    }
}

/// One configuration key as the charge point reports it (OCPP `KeyValue`); also stored in Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigurationEntry {
    /// The key name.
    pub key: String,
    /// Whether the charge point lets it be changed.
    pub readonly: bool,
    /// Its value; absent when the charge point does not say.
    pub value: Option<String>,
}

/// The charge point's answer to a [`ServerCall`], already checked by the protocol edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallReply {
    /// TriggerMessage.conf: Accepted, Rejected or NotImplemented.
    Trigger {
        /// The status as sent.
        status: String,
    },
    /// GetConfiguration.conf.
    Configuration {
        /// Keys the charge point knows.
        known: Vec<ConfigurationEntry>,
        /// Keys asked for that it does not know.
        unknown: Vec<String>,
    },
    /// ChangeConfiguration.conf: Accepted, Rejected, RebootRequired or NotSupported.
    Change {
        /// The status as sent.
        status: String,
    },
}

/// Why a [`ServerCall`] got no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum CallError {
    /// The charge point is not connected (or the session ended before it answered).
    #[error("the charge point is not connected")]
    NotConnected,
    /// No answer within `ocpp.call_timeout_secs`.
    #[error("the charge point did not answer within {0} s")]
    Timeout(u64),
    /// The charge point answered with a CALLERROR.
    #[error("the charge point answered with {code}: {description}")]
    Refused {
        /// The OCPP-J error code as sent.
        code: String,
        /// Its description.
        description: String,
    },
    /// The answer did not match the action's response schema.
    #[error("the charge point's answer is invalid: {0}")]
    BadResponse(String),
    /// Too many calls already wait for this charge point.
    #[error("{MAX_QUEUED_CALLS} calls already wait for this charge point")]
    Busy,
}

/// What a call resolves to.
pub type CallResult = Result<CallReply, CallError>;

/// Make a call to the charge point; resolves when it answers, fails or times out.
#[derive(Debug, Message)]
#[rtype(result = "CallResult")]
pub struct Call(pub ServerCall);

/// The call on the wire.
struct Outstanding {
    /// Its uniqueId.
    unique_id: String,
    /// Who waits for it.
    responder: oneshot::Sender<CallResult>,
    /// Its timeout timer, cancelled when it is answered.
    timer: Option<SpawnHandle>,
}

/// Calls of one session: at most one outstanding, the rest in arrival order.
#[derive(Default)]
pub struct CallQueue {
    /// Waiting calls.
    waiting: VecDeque<(ServerCall, oneshot::Sender<CallResult>)>,
    /// The call sent and not yet answered.
    outstanding: Option<Outstanding>,
    /// Source of uniqueIds, unique within the session.
    sequence: u64,
}

impl CallQueue {
    /// Queues a call; `Err` hands the responder back when the queue is full.
    pub fn push(
        &mut self,
        call: ServerCall,
        responder: oneshot::Sender<CallResult>,
    ) -> Result<(), oneshot::Sender<CallResult>> {
        if self.waiting.len() >= MAX_QUEUED_CALLS {
            return Err(responder);
        }
        self.waiting.push_back((call, responder));
        Ok(())
    }

    /// The next call to send and its uniqueId, when none is outstanding; the caller must then
    /// [`CallQueue::sent`] or [`CallQueue::finish`] it.
    pub fn next_to_send(&mut self) -> Option<(String, ServerCall)> {
        if self.outstanding.is_some() {
            return None;
        }
        let (call, responder) = self.waiting.pop_front()?;
        self.sequence += 1;
        let unique_id = format!("cs-{}", self.sequence);
        self.outstanding = Some(Outstanding {
            unique_id: unique_id.clone(),
            responder,
            timer: None,
        });
        Some((unique_id, call))
    }

    /// Remembers the timeout timer of the outstanding call.
    pub fn sent(&mut self, timer: SpawnHandle) {
        if let Some(outstanding) = &mut self.outstanding {
            outstanding.timer = Some(timer);
        }
    }

    /// Resolves the outstanding call if it is `unique_id`; returns its timer to cancel, and
    /// whether it matched (a late answer to a call that already timed out does not).
    pub fn finish(&mut self, unique_id: &str, result: CallResult) -> (bool, Option<SpawnHandle>) {
        match self.outstanding.take() {
            Some(outstanding) if outstanding.unique_id == unique_id => {
                let _ = outstanding.responder.send(result);
                (true, outstanding.timer)
            }
            other => {
                self.outstanding = other;
                (false, None)
            }
        }
    }

    /// Fails every call, outstanding or waiting (the session ended).
    pub fn fail_all(&mut self, error: CallError) {
        if let Some(outstanding) = self.outstanding.take() {
            let _ = outstanding.responder.send(Err(error.clone()));
        }
        for (_, responder) in self.waiting.drain(..) {
            let _ = responder.send(Err(error.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get() -> ServerCall {
        ServerCall::GetConfiguration { keys: Vec::new() }
    }

    #[test]
    fn one_call_is_outstanding_at_a_time_in_order() {
        let mut queue = CallQueue::default();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        assert!(queue.push(get(), tx1).is_ok());
        assert!(queue
            .push(
                ServerCall::Trigger {
                    message: TriggerKind::Heartbeat,
                    connector_id: None
                },
                tx2
            )
            .is_ok());
        let (first, call) = queue.next_to_send().unwrap();
        assert_eq!(call, get());
        assert!(
            queue.next_to_send().is_none(),
            "the second waits for the first"
        );
        assert!(!queue.finish("other", Err(CallError::Busy)).0);
        let ok = Ok(CallReply::Trigger {
            status: "Accepted".into(),
        });
        assert!(queue.finish(&first, ok.clone()).0);
        assert_eq!(rx1.try_recv().unwrap(), ok);
        let (second, call) = queue.next_to_send().unwrap();
        assert_ne!(first, second);
        assert_eq!(call.action(), "TriggerMessage");
        queue.fail_all(CallError::NotConnected);
        assert_eq!(rx2.try_recv().unwrap(), Err(CallError::NotConnected));
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut queue = CallQueue::default();
        for _ in 0..MAX_QUEUED_CALLS {
            assert!(queue.push(get(), oneshot::channel().0).is_ok());
        }
        assert!(queue.push(get(), oneshot::channel().0).is_err());
    }
}
