//! The alert webhook: every raised and cleared alert is POSTed as JSON to `[alerts.webhook]
//! url`, in order, retried with exponential backoff, from a bounded queue that drops the oldest
//! when full, so a slow or dead receiver never slows ingest.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ::actors::exchange::AlertState;
use ::actors::stream::AlertNotice;
use actix::prelude::*;
use serde_json::Value;

/// First delay before retrying a failed delivery; doubles up to `retry_max`.
const RETRY_INITIAL: Duration = Duration::from_millis(250);

/// What the notifier needs from `[alerts.webhook]`.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Where to POST.
    pub url: String,
    /// Timeout of one attempt.
    pub timeout: Duration,
    /// Notifications waiting at most; the oldest is dropped past this.
    pub max_queue: usize,
    /// Longest delay between retries.
    pub retry_max: Duration,
}

/// Counters an operator (or a test) reads to see whether the webhook keeps up.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Notifications the receiver accepted (2xx).
    pub delivered: AtomicU64,
    /// Failed attempts (error, timeout or non-2xx), each retried.
    pub failed_attempts: AtomicU64,
    /// Notifications dropped because the queue was full.
    pub dropped: AtomicU64,
}

/// The JSON body of a notification: the alert document plus `"event"` (`alert` for a raise,
/// `alert_cleared` for a clear), the same names as the live event stream.
pub fn body(notice: &AlertNotice) -> Value {
    let alert = &notice.0;
    let mut body = serde_json::to_value(alert).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut body {
        let event = match alert.state {
            AlertState::Active => "alert",
            AlertState::Cleared => "alert_cleared",
        };
        map.insert("event".to_owned(), Value::from(event));
    }
    body
}

/// Delivers alert notices to the webhook one at a time, oldest first.
pub struct WebhookNotifier {
    /// Configuration.
    settings: WebhookSettings,
    /// HTTP client, made on the actor's own thread (awc clients are not `Send`).
    client: Option<awc::Client>,
    /// Waiting notifications with their sequence numbers.
    queue: VecDeque<(u64, Value)>,
    /// Sequence number of the next notification.
    next_seq: u64,
    /// An attempt is in flight or a retry is scheduled.
    busy: bool,
    /// Delay before the next retry.
    backoff: Duration,
    /// Counters.
    stats: Arc<WebhookStats>,
}

impl WebhookNotifier {
    /// A notifier for `settings.url`; subscribe it with `SampleStream::subscribe_alerts`.
    pub fn new(settings: WebhookSettings, stats: Arc<WebhookStats>) -> WebhookNotifier {
        WebhookNotifier {
            settings,
            client: None,
            queue: VecDeque::new(),
            next_seq: 0,
            busy: false,
            backoff: RETRY_INITIAL,
            stats,
        }
    }

    fn deliver(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        let Some((seq, body)) = self.queue.front().cloned() else {
            return;
        };
        let client = self
            .client
            .get_or_insert_with(|| awc::Client::builder().disable_redirects().finish());
        let request = client
            .post(&self.settings.url)
            .timeout(self.settings.timeout)
            .send_json(&body);
        self.busy = true;
        let attempt = async move {
            match request.await {
                Ok(response) if response.status().is_success() => Ok(()),
                Ok(response) => Err(format!("it answered {}", response.status())),
                Err(error) => Err(error.to_string()),
            }
        };
        ctx.spawn(
            attempt
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(()) => {
                        act.busy = false;
                        act.backoff = RETRY_INITIAL;
                        act.stats.delivered.fetch_add(1, Ordering::Relaxed);
                        if act.queue.front().is_some_and(|(s, _)| *s == seq) {
                            act.queue.pop_front();
                        }
                        act.deliver(ctx);
                    }
                    Err(error) => {
                        act.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                        log::warn!(
                            "{}: the alert webhook {} failed ({error}); retrying in {:?}.",
                            body["charge_point_id"].as_str().unwrap_or("-"),
                            act.settings.url,
                            act.backoff
                        );
                        let delay = act.backoff;
                        act.backoff =
                            (act.backoff * 2).min(act.settings.retry_max.max(RETRY_INITIAL));
                        ctx.run_later(delay, |act, ctx| {
                            act.busy = false;
                            act.deliver(ctx);
                        });
                    }
                }),
        );
    }
}

impl Actor for WebhookNotifier {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.busy = false;
        self.deliver(ctx);
    }
}

impl Supervised for WebhookNotifier {}

impl Handler<AlertNotice> for WebhookNotifier {
    type Result = ();

    fn handle(&mut self, notice: AlertNotice, ctx: &mut Self::Context) {
        if self.queue.len() >= self.settings.max_queue.max(1) {
            if let Some((_, oldest)) = self.queue.pop_front() {
                let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                log::error!(
                    "{}: the alert webhook queue is full ({} waiting); dropped the notification of alert {} ({dropped} dropped so far).",
                    oldest["charge_point_id"].as_str().unwrap_or("-"),
                    self.settings.max_queue,
                    oldest["id"].as_str().unwrap_or("-")
                );
            }
        }
        self.queue.push_back((self.next_seq, body(&notice)));
        self.next_seq += 1;
        self.deliver(ctx);
    }
}
