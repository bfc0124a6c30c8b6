//! The `AlertSupervisor` actor: runs the rules on the live stream, owns the alert lifecycle,
//! tells every alert subscriber (event stream, webhook) about raises and clears, logs them and
//! stores every change in Redis without ever making the stream wait for Redis.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use crate::redis_pool::Pool;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::book::{AlertBook, Change};
use super::deadlines::Deadlines;
use super::rules::{clock_skew_checks, safety_checks, Check, Verdict};
use crate::exchange::{Alert, Rule, SessionEvent, ThresholdSet, ThresholdSource, Thresholds};
use crate::id::ChargePointId;
use crate::store::alerts as store;
use crate::store::reads::ReadError;
use crate::stream::{AlertNotice, SampleBatch, SampleStream, SessionNotice};
use crate::FastHashMap as HashMap;

/// Alert changes waiting for Redis at most; past this new changes are dropped (and counted),
/// so a long Redis outage cannot eat the memory.
const MAX_PENDING_WRITES: usize = 100_000;

/// How long value-only updates of active alerts are collected before they are written, so an
/// alert that holds for hours costs one write per second at most, not one per reading.
const UPDATE_DELAY: Duration = Duration::from_secs(1);

/// How long the first load from Redis may hold back the rules at start.
const FIRST_LOAD_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest wait between two attempts to load thresholds and active alerts.
const LOAD_RETRY_MAX: Duration = Duration::from_secs(30);

/// What the supervisor needs from the configuration.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// Global thresholds from `config.toml`, until the API stored others.
    pub defaults: Thresholds,
    /// `alerts.max_clock_skew_secs`.
    pub max_clock_skew_secs: u64,
    /// Silence during an open transaction that raises `stale_meter_data` (3x the interval).
    pub stale_after: Duration,
    /// `retention.alerts_days`: how long an alert is kept after its last change.
    pub retention_days: u64,
    /// First delay before retrying a failed alert write.
    pub retry_initial: Duration,
    /// Longest delay between retries.
    pub retry_max: Duration,
}

/// Replaces the global thresholds (`charge_point: None`) or a charge point's override; with
/// `thresholds: None` the override is removed. The API has already stored it in Redis.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct SetThresholds {
    /// Whose thresholds; `None`: the global document.
    pub charge_point: Option<ChargePointId>,
    /// The new document; `None` removes an override.
    pub thresholds: Option<Thresholds>,
}

/// Asks which thresholds apply (to a charge point, or globally).
#[derive(Debug, Clone, Message)]
#[rtype(result = "EffectiveThresholds")]
pub struct GetThresholds {
    /// Whose thresholds; `None`: the global document.
    pub charge_point: Option<ChargePointId>,
}

/// Answer to [`GetThresholds`].
#[derive(Debug, Clone, Copy, PartialEq, MessageResponse)]
pub struct EffectiveThresholds {
    /// The document in force.
    pub thresholds: Thresholds,
    /// Where it comes from.
    pub source: ThresholdSource,
}

/// Acknowledges an alert by id: sets `acknowledged_at` (the first time) and stores it.
/// Answers the alert, `None` when no alert has that id.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Option<Alert>, ReadError>")]
pub struct Acknowledge {
    /// The alert's id.
    pub id: String,
    /// When the operator acknowledged it.
    pub at: DateTime<Utc>,
}

/// Watches the live stream: threshold and data-quality rules, alert lifecycle, notifications
/// and storage. Run it under `actix::Supervisor`; its state survives a restart of the actor,
/// and active alerts and thresholds are reloaded from Redis when the server restarts.
pub struct AlertSupervisor {
    /// Redis, for alert writes and the load at start.
    pool: Pool,
    /// Where raises and clears are published (event stream, webhook subscribe there).
    stream: SampleStream,
    /// Configuration.
    settings: AlertSettings,
    /// Active alerts and the rules' memory.
    book: AlertBook,
    /// Thresholds in force.
    thresholds: ThresholdSet,
    /// Whether thresholds and active alerts were loaded from Redis.
    loaded: bool,
    /// Thresholds the API changed before the load finished: the load must not undo them.
    set_before_load: HashSet<Option<ChargePointId>>,
    /// Delay before the next load attempt.
    load_backoff: Duration,
    /// Open transactions per charge point (id -> connector), from the session events.
    open: HashMap<ChargePointId, BTreeMap<i32, u32>>,
    /// Last MeterValues (or transaction start, or connect) per charge point.
    last_heard: HashMap<ChargePointId, DateTime<Utc>>,
    /// When each charge point with an open transaction turns stale unless it is heard from.
    stale_deadlines: Deadlines<ChargePointId>,
    /// The one timer behind `stale_deadlines`: when it fires, and its handle.
    stale_timer: Option<(Instant, SpawnHandle)>,
    /// Silence that raises `stale_meter_data` per charge point (3x its effective sample
    /// interval, from [`SessionEvent::SampleInterval`]); others use `settings.stale_after`.
    stale_after: HashMap<ChargePointId, Duration>,
    /// Alert versions not yet in Redis, newest per id.
    pending: HashMap<String, Alert>,
    /// Whether a write is in flight (one at a time keeps versions in order).
    writing: bool,
    /// Timer of the delayed write of updates.
    flush_timer: Option<SpawnHandle>,
    /// Timer of the retry after a failed write.
    retry_timer: Option<SpawnHandle>,
    /// Delay before the next retry.
    write_backoff: Duration,
    /// Alert changes dropped because the pending writes were full.
    dropped_writes: u64,
    /// Shutdown waiters, answered once every pending alert change is in Redis.
    flush_waiters: Vec<oneshot::Sender<bool>>,
}

/// Write every pending alert change now; resolves `true` once they are all in Redis. Shutdown
/// sends it so an alert raised in the last moment is not lost.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct FlushAlerts;

/// A session of this charge point starts on this instance (not replacing one here): once
/// every pending alert change is in Redis, replace its active alerts with the stored ones, so
/// an incident raised by the instance that held it before is not raised again, and one it
/// cleared is not kept. Resolves when done (or given up after [`RESTORE_WAIT`]); the new
/// session starts after it, so its first readings meet the restored alerts.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RestoreAlerts(pub ChargePointId);

/// This charge point moved to another instance: end its stale-data alert as a disconnect
/// would, write every pending alert change, and forget its alerts here. Resolves `true` once
/// the writes are in Redis.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct ReleaseAlerts(pub ChargePointId);

/// Longest a [`RestoreAlerts`] waits for pending writes and the read.
pub const RESTORE_WAIT: Duration = Duration::from_secs(5);

impl AlertSupervisor {
    /// A supervisor publishing on `stream`; subscribe it to the same stream's samples and
    /// session events.
    pub fn new(pool: Pool, stream: SampleStream, settings: AlertSettings) -> AlertSupervisor {
        AlertSupervisor {
            pool,
            stream,
            thresholds: ThresholdSet {
                global: settings.defaults,
                overrides: std::collections::HashMap::new(),
            },
            write_backoff: settings.retry_initial,
            settings,
            book: AlertBook::new(AlertBook::time_prefix(Utc::now())),
            loaded: false,
            set_before_load: HashSet::new(),
            load_backoff: Duration::from_secs(1),
            open: HashMap::default(),
            last_heard: HashMap::default(),
            stale_deadlines: Deadlines::new(),
            stale_timer: None,
            stale_after: HashMap::default(),
            pending: HashMap::default(),
            writing: false,
            flush_timer: None,
            retry_timer: None,
            dropped_writes: 0,
            flush_waiters: Vec::new(),
        }
    }

    /// Loads thresholds and active alerts; the first attempt holds the mailbox (briefly) so no
    /// reading is checked before the alerts active before a restart are known.
    fn load(&mut self, ctx: &mut Context<Self>, first: bool) {
        let pool = self.pool.clone();
        let load = async move {
            let thresholds = store::thresholds(&pool).await?;
            let active = store::active_alerts(&pool).await?;
            Ok::<_, ReadError>((thresholds, active))
        };
        let fut = async move {
            match tokio::time::timeout(FIRST_LOAD_TIMEOUT, load).await {
                Ok(result) => result.map_err(|e| e.to_string()),
                Err(_) => Err("timed out".to_owned()),
            }
        }
        .into_actor(self)
        .map(move |result, act, ctx| match result {
            Ok(((global, overrides), active)) => {
                if !act.set_before_load.contains(&None) {
                    if let Some(global) = global {
                        act.thresholds.global = global;
                    }
                }
                for (cp, t) in overrides {
                    if !act.set_before_load.contains(&Some(cp.clone())) {
                        act.thresholds.overrides.insert(cp, t);
                    }
                }
                act.book.restore(active);
                act.loaded = true;
                act.set_before_load.clear();
                log::info!(
                    "Alerts: loaded {} active alerts and {} threshold overrides from Redis.",
                    act.book.active_count(),
                    act.thresholds.overrides.len()
                );
            }
            Err(error) => {
                log::error!(
                    "Alerts: cannot load thresholds and active alerts from Redis ({error}); using the configured thresholds and retrying in {:?}.",
                    act.load_backoff
                );
                let delay = act.load_backoff;
                act.load_backoff = (act.load_backoff * 2).min(LOAD_RETRY_MAX);
                ctx.run_later(delay, |act, ctx| act.load(ctx, false));
            }
        });
        if first {
            ctx.wait(fut);
        } else {
            ctx.spawn(fut);
        }
    }

    /// Logs, publishes and queues for storage what the rules changed.
    fn publish(&mut self, changes: Vec<Change>, ctx: &mut Context<Self>) {
        let mut urgent = false;
        for change in changes {
            match &change {
                Change::Raised(a) => {
                    log::warn!(
                        "{}: {} alert {} raised on connector {}{}: {} {} against {} (id {}).",
                        a.charge_point_id,
                        a.severity.as_str(),
                        a.rule.as_str(),
                        a.connector_id,
                        a.phase.map(|p| format!(" phase {p}")).unwrap_or_default(),
                        a.value,
                        a.unit,
                        a.threshold,
                        a.id
                    );
                    self.stream.publish_alert(AlertNotice(a.clone()));
                    urgent = true;
                }
                Change::Cleared(a) => {
                    log::info!(
                        "{}: alert {} on connector {} cleared at {} {} (id {}).",
                        a.charge_point_id,
                        a.rule.as_str(),
                        a.connector_id,
                        a.value,
                        a.unit,
                        a.id
                    );
                    self.stream.publish_alert(AlertNotice(a.clone()));
                    urgent = true;
                }
                Change::Updated(_) => {}
            }
            self.queue_write(change.alert().clone());
        }
        if urgent {
            self.flush(ctx);
        } else if !self.pending.is_empty() && self.flush_timer.is_none() {
            self.flush_timer = Some(ctx.run_later(UPDATE_DELAY, |act, ctx| {
                act.flush_timer = None;
                act.flush(ctx);
            }));
        }
    }

    fn queue_write(&mut self, alert: Alert) {
        if self.pending.len() >= MAX_PENDING_WRITES && !self.pending.contains_key(&alert.id) {
            self.dropped_writes += 1;
            log::error!(
                "{}: alert {} is not stored: {} alert changes already wait for Redis ({} dropped so far).",
                alert.charge_point_id,
                alert.id,
                self.pending.len(),
                self.dropped_writes
            );
            return;
        }
        self.pending.insert(alert.id.clone(), alert);
    }

    /// Writes everything pending in one pipeline, in the background; on failure keeps it and
    /// retries with exponential backoff.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if !self.writing && self.pending.is_empty() {
            for waiter in self.flush_waiters.drain(..) {
                let _ = waiter.send(true);
            }
        }
        if self.writing || self.retry_timer.is_some() || self.pending.is_empty() {
            return;
        }
        self.writing = true;
        let batch: Vec<Alert> = self.pending.drain().map(|(_, a)| a).collect();
        let pool = self.pool.clone();
        let days = self.settings.retention_days;
        let write = async move {
            let result = store::write_alerts(&pool, &batch, days).await;
            (batch, result)
        };
        ctx.spawn(write.into_actor(self).map(|(batch, result), act, ctx| {
            act.writing = false;
            match result {
                Ok(()) => {
                    act.write_backoff = act.settings.retry_initial;
                    act.flush(ctx);
                }
                Err(error) => {
                    log::error!(
                        "Alerts: storing {} alert changes failed ({error}); retrying in {:?}.",
                        batch.len(),
                        act.write_backoff
                    );
                    for alert in batch {
                        if !act.pending.contains_key(&alert.id) {
                            act.queue_write(alert);
                        }
                    }
                    let delay = act.write_backoff;
                    act.write_backoff = (act.write_backoff * 2).min(act.settings.retry_max);
                    act.retry_timer = Some(ctx.run_later(delay, |act, ctx| {
                        act.retry_timer = None;
                        act.flush(ctx);
                    }));
                }
            }
        }));
    }

    fn has_open_transaction(&self, cp: &ChargePointId) -> bool {
        self.open.get(cp).is_some_and(|o| !o.is_empty())
    }

    /// (Re)starts the stale-data countdown of a charge point.
    fn arm_stale(&mut self, cp: ChargePointId, ctx: &mut Context<Self>) {
        let at = Instant::now() + self.stale_after_of(&cp);
        self.stale_deadlines.set(cp, at);
        self.schedule_stale_check(ctx);
    }

    fn disarm_stale(&mut self, cp: &ChargePointId) {
        // The timer stays; firing early finds nothing due and re-arms for the next deadline.
        self.stale_deadlines.remove(cp);
    }

    /// Keeps the one stale-data timer at or before the earliest deadline. Moving a deadline
    /// later (every reading does) leaves the timer alone: it fires, finds nothing due and
    /// re-arms, so the cost is one wake per earliest deadline, not one per reading.
    fn schedule_stale_check(&mut self, ctx: &mut Context<Self>) {
        let Some(next) = self.stale_deadlines.next() else {
            return;
        };
        if self.stale_timer.as_ref().is_some_and(|(at, _)| *at <= next) {
            return;
        }
        if let Some((_, handle)) = self.stale_timer.take() {
            ctx.cancel_future(handle);
        }
        let delay = next.saturating_duration_since(Instant::now());
        let handle = ctx.run_later(delay, |act, ctx| {
            act.stale_timer = None;
            for cp in act.stale_deadlines.pop_due(Instant::now()) {
                act.stale_fired(&cp, ctx);
            }
            act.schedule_stale_check(ctx);
        });
        self.stale_timer = Some((next, handle));
    }

    /// The silence that counts as stale for `cp`.
    fn stale_after_of(&self, cp: &ChargePointId) -> Duration {
        self.stale_after
            .get(cp)
            .copied()
            .unwrap_or(self.settings.stale_after)
    }

    fn stale_fired(&mut self, cp: &ChargePointId, ctx: &mut Context<Self>) {
        let Some(connector_id) = self.open.get(cp).and_then(|o| o.values().next().copied()) else {
            return;
        };
        let now = Utc::now();
        let silent = self
            .last_heard
            .get(cp)
            .map_or(0.0, |t| (now - *t).num_milliseconds() as f64 / 1000.0);
        let check = Check {
            connector_id,
            rule: Rule::StaleMeterData,
            phase: None,
            measurand: None,
            value: silent.round(),
            threshold: self.stale_after_of(cp).as_secs_f64(),
            unit: "s",
            verdict: Verdict::Breach,
            at: now,
        };
        let changes: Vec<Change> = self.book.apply(cp, &check, now).into_iter().collect();
        self.publish(changes, ctx);
    }

    fn clear_stale(&mut self, cp: &ChargePointId, ctx: &mut Context<Self>) {
        let changes = self.book.clear_rule(cp, Rule::StaleMeterData, Utc::now());
        self.publish(changes, ctx);
    }
}

impl Actor for AlertSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if !self.loaded {
            self.load(ctx, true);
        }
        let waiting: Vec<ChargePointId> = self
            .open
            .iter()
            .filter(|(_, o)| !o.is_empty())
            .map(|(cp, _)| cp.clone())
            .collect();
        for cp in waiting {
            self.arm_stale(cp, ctx);
        }
        self.flush(ctx);
    }
}

impl Supervised for AlertSupervisor {
    fn restarting(&mut self, _: &mut Self::Context) {
        // The context's timers and futures are gone; `started` re-arms and re-flushes.
        self.stale_deadlines.clear();
        self.stale_timer = None;
        self.writing = false;
        self.flush_timer = None;
        self.retry_timer = None;
    }
}

impl Handler<FlushAlerts> for AlertSupervisor {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, _: FlushAlerts, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.flush_waiters.push(tx);
        if let Some(timer) = self.flush_timer.take() {
            ctx.cancel_future(timer);
        }
        self.flush(ctx);
        Box::pin(async move { rx.await.unwrap_or(false) })
    }
}

impl Handler<RestoreAlerts> for AlertSupervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(
        &mut self,
        RestoreAlerts(cp): RestoreAlerts,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        if self.retry_timer.is_some() {
            // Alert writes are failing (Redis away): nothing newer can be read; keep what this
            // instance knows rather than hold the charge point's upgrade.
            log::warn!("{cp}: active alerts not restored: Redis refuses alert writes.");
            return Box::pin(actix::fut::ready(()));
        }
        let (tx, rx) = oneshot::channel();
        self.flush_waiters.push(tx);
        if let Some(timer) = self.flush_timer.take() {
            ctx.cancel_future(timer);
        }
        self.flush(ctx);
        let pool = self.pool.clone();
        let read_cp = cp.clone();
        let restore = async move {
            tokio::time::timeout(RESTORE_WAIT, async move {
                if !rx.await.unwrap_or(false) {
                    return Err("pending alert writes did not reach Redis".to_owned());
                }
                store::active_alerts_of(&pool, &read_cp)
                    .await
                    .map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|_| Err("timed out".to_owned()))
        };
        Box::pin(restore.into_actor(self).map(move |result, act, _| match result {
            Ok(alerts) => act.book.replace_active(&cp, alerts),
            Err(error) => log::warn!(
                "{cp}: active alerts not restored from Redis ({error}); keeping what this instance knows."
            ),
        }))
    }
}

impl Handler<ReleaseAlerts> for AlertSupervisor {
    type Result = ResponseFuture<bool>;

    fn handle(
        &mut self,
        ReleaseAlerts(cp): ReleaseAlerts,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        self.disarm_stale(&cp);
        self.clear_stale(&cp, ctx);
        self.book.forget(&cp);
        self.open.remove(&cp);
        self.last_heard.remove(&cp);
        let (tx, rx) = oneshot::channel();
        self.flush_waiters.push(tx);
        if let Some(timer) = self.flush_timer.take() {
            ctx.cancel_future(timer);
        }
        self.flush(ctx);
        Box::pin(async move { rx.await.unwrap_or(false) })
    }
}

impl Handler<SampleBatch> for AlertSupervisor {
    type Result = ();

    fn handle(&mut self, batch: SampleBatch, ctx: &mut Self::Context) {
        if batch.recorded_offline {
            // Readings from while the charge point was offline describe the past: judged now,
            // they would raise (or clear) alerts that are no longer true. Stored and shown,
            // never checked.
            self.stream.publish_checked(batch);
            return;
        }
        let now = Utc::now();
        let cp = batch.charge_point.clone();
        let (thresholds, _) = self.thresholds.for_charge_point(&cp);
        let mut checks = safety_checks(&batch.samples, &thresholds);
        checks.extend(clock_skew_checks(
            &batch.samples,
            now,
            self.settings.max_clock_skew_secs,
        ));
        let open = self.open.get(&cp);
        checks.extend(
            self.book
                .register_checks(&cp, &batch.samples, now, |connector| {
                    open.is_some_and(|o| o.values().any(|c| *c == connector))
                }),
        );
        let mut changes: Vec<Change> = checks
            .iter()
            .filter_map(|check| self.book.apply(&cp, check, now))
            .collect();
        changes.extend(self.book.clear_rule(&cp, Rule::StaleMeterData, now));
        self.last_heard.insert(cp.clone(), now);
        if self.has_open_transaction(&cp) {
            self.arm_stale(cp, ctx);
        }
        // The live feed shows the sample first, then what it raised or cleared.
        self.stream.publish_checked(batch);
        self.publish(changes, ctx);
    }
}

impl Handler<SessionNotice> for AlertSupervisor {
    type Result = ();

    fn handle(&mut self, notice: SessionNotice, ctx: &mut Self::Context) {
        // Keep session events in line with the samples forwarded on the checked feed.
        self.stream.publish_checked_event(notice.clone());
        let cp = notice.charge_point;
        match notice.event {
            SessionEvent::TransactionStarted {
                transaction_id,
                connector_id,
                ..
            } => {
                self.open
                    .entry(cp.clone())
                    .or_default()
                    .insert(transaction_id, connector_id);
                self.last_heard.insert(cp.clone(), notice.at);
                self.arm_stale(cp, ctx);
            }
            SessionEvent::TransactionStopped { transaction_id, .. } => {
                if let Some(open) = self.open.get_mut(&cp) {
                    open.remove(&transaction_id);
                }
                if !self.has_open_transaction(&cp) {
                    self.open.remove(&cp);
                    self.disarm_stale(&cp);
                    self.clear_stale(&cp, ctx);
                }
            }
            SessionEvent::Disconnected => {
                self.disarm_stale(&cp);
                self.clear_stale(&cp, ctx);
            }
            SessionEvent::Connected => {
                if self.has_open_transaction(&cp) {
                    self.last_heard.insert(cp.clone(), notice.at);
                    self.arm_stale(cp, ctx);
                }
            }
            SessionEvent::Status(_) => {}
            SessionEvent::SampleInterval { secs } => {
                let after = Duration::from_secs(u64::from(secs).saturating_mul(3));
                self.stale_after.insert(cp.clone(), after);
                if self.stale_deadlines.contains(&cp) {
                    self.arm_stale(cp, ctx);
                }
            }
        }
    }
}

impl Handler<SetThresholds> for AlertSupervisor {
    type Result = ();

    fn handle(&mut self, message: SetThresholds, _: &mut Self::Context) {
        if !self.loaded {
            self.set_before_load.insert(message.charge_point.clone());
        }
        match (message.charge_point, message.thresholds) {
            (None, Some(t)) => self.thresholds.global = t,
            (None, None) => self.thresholds.global = self.settings.defaults,
            (Some(cp), Some(t)) => {
                self.thresholds.overrides.insert(cp, t);
            }
            (Some(cp), None) => {
                self.thresholds.overrides.remove(&cp);
            }
        }
    }
}

impl Handler<GetThresholds> for AlertSupervisor {
    type Result = EffectiveThresholds;

    fn handle(&mut self, message: GetThresholds, _: &mut Self::Context) -> EffectiveThresholds {
        let (thresholds, source) = match &message.charge_point {
            Some(cp) => self.thresholds.for_charge_point(cp),
            None => (self.thresholds.global, ThresholdSource::Global),
        };
        EffectiveThresholds { thresholds, source }
    }
}

impl Handler<Acknowledge> for AlertSupervisor {
    type Result = ResponseFuture<Result<Option<Alert>, ReadError>>;

    fn handle(&mut self, message: Acknowledge, ctx: &mut Self::Context) -> Self::Result {
        let known = match self.book.acknowledge(&message.id, message.at) {
            Some(alert) => Some(alert),
            // Cleared a moment ago and not yet in Redis.
            None => self.pending.get_mut(&message.id).map(|alert| {
                alert.acknowledged_at.get_or_insert(message.at);
                alert.clone()
            }),
        };
        if let Some(alert) = known {
            self.queue_write(alert.clone());
            self.flush(ctx);
            return Box::pin(async move { Ok(Some(alert)) });
        }
        let pool = self.pool.clone();
        Box::pin(async move { store::acknowledge(&pool, &message.id, message.at).await })
    }
}
