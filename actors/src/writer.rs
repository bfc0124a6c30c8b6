//! `RedisWriter`: the only actor that writes to Redis. Buffers hand it whole batches; it turns
//! everything queued into one pipeline, retries with exponential backoff while Redis is away, and
//! keeps what it has not written (bounded) so that an outage delays writes instead of losing them.
//!
//! It never makes a charge point wait: `WriteBatch` returns as soon as the batch is queued.
//!
//! The "latest sample per series" hash of a charge point is written coalesced, not with every
//! flush: once a batch is confirmed in the raw chunks, its newest sample per series waits here
//! (`latest_unwritten`) and one `HSET` per charge point carries everything that accumulated, at
//! most every `latest_interval` (and at once when the session ends and on shutdown). A busy
//! charge point flushing every fraction of a second thus costs one `APPEND` per flush plus one
//! `HSET` per interval instead of two commands per flush. Readers merge what waits here
//! ([`UnwrittenLatest`]), so the API stays read-your-writes; only a crash (SIGKILL, power loss)
//! can leave the hash behind the raw chunks, by at most the last interval's newest values (the
//! raw samples themselves are in Redis), until each series reports again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::redis_pool::Pool;
use actix::prelude::*;
use deadpool_redis::redis::{self, Pipeline};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use tokio::sync::oneshot;

use crate::backlog::{Backlog, Ticket};
use crate::exchange::StoreOp;
use crate::id::ChargePointId;
use crate::sample::Sample;
use crate::store::{chunk, keys};
use crate::wal::WalPin;
use crate::FastHashMap;

/// Writer tuning, from `[buffer]`, `[redis]` and `[retention]` in config.toml.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    /// Samples kept while Redis is unreachable; past this the oldest are dropped (and counted).
    pub max_pending_samples: usize,
    /// Days raw sample chunks live, counted from the end of the chunk's hour.
    pub raw_days: u32,
    /// First retry delay after a failed pipeline.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Most samples one pipeline carries; more are written by the next pipeline at once.
    pub max_samples_per_pipeline: usize,
    /// Longest the latest-values hash of a charge point lags its raw chunks
    /// (`buffer.latest_interval_secs`); zero writes it with every flush.
    pub latest_interval: Duration,
    /// Key of the write-ahead log's raw marks ([`keys::wal_raw_marks`]), `None` without a log.
    pub wal_marks_key: Option<String>,
}

/// Queue samples and record changes of one charge point for writing.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct WriteBatch {
    /// Whose data this is (every key it touches carries this id's hash tag).
    pub charge_point: ChargePointId,
    /// Samples to append to the raw series.
    pub samples: Vec<Sample>,
    /// Record changes, applied in order.
    pub ops: Vec<StoreOp>,
    /// The write-ahead log record(s) this batch carries, held until Redis has it: the pin of
    /// its oldest record (see [`crate::wal`]); `None` for data the log does not keep.
    pub wal: Option<Arc<WalPin>>,
    /// Highest log sequence number among the records whose samples this batch carries (0:
    /// none); the writer records it per charge point ([`keys::wal_raw_marks`]).
    pub wal_last: u64,
    /// Counts the batch's samples as not yet in Redis while it lives (the writer drops the
    /// batch once Redis has it), so a raw read asks the writer for them only when there are
    /// any. Private: batches with samples are made by [`WriteBatch::samples`], which counts.
    _ticket: Option<Ticket>,
}

impl WriteBatch {
    /// A batch of record changes only (boot, status, transactions): reads of raw samples need
    /// not wait for it, so it is not counted.
    pub fn ops(charge_point: ChargePointId, ops: Vec<StoreOp>, wal: Option<Arc<WalPin>>) -> Self {
        WriteBatch {
            charge_point,
            samples: Vec::new(),
            ops,
            wal,
            wal_last: 0,
            _ticket: None,
        }
    }

    /// A batch with samples (and perhaps record changes), counted in `unwritten` until the
    /// writer has put it in Redis.
    pub fn samples(
        charge_point: ChargePointId,
        samples: Vec<Sample>,
        ops: Vec<StoreOp>,
        wal: Option<Arc<WalPin>>,
        wal_last: u64,
        unwritten: &Arc<Backlog>,
    ) -> Self {
        let ticket = (!samples.is_empty()).then(|| Ticket::new(unwritten, &charge_point));
        WriteBatch {
            charge_point,
            samples,
            ops,
            wal,
            wal_last,
            _ticket: ticket,
        }
    }
}

/// Resolve once every batch queued so far is in Redis; used by shutdown. Answers `false` if the
/// writer was stopped first.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct Drain;

/// Ask for the samples of one charge point that are queued but not yet confirmed written, so
/// reads can show them (read-your-writes while Redis is slow or away).
#[derive(Debug, Message)]
#[rtype(result = "Vec<Sample>")]
pub struct PendingSamples(pub ChargePointId);

/// Ask for the newest not-yet-in-Redis sample per series of one charge point: samples still
/// queued and values already in the raw chunks whose latest-hash `HSET` is still coalescing.
/// The latest-values reads merge this with the hash so that they stay read-your-writes.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Sample>")]
pub struct UnwrittenLatest(pub ChargePointId);

/// Newest sample per series of one charge point that is in the raw chunks but not yet in its
/// latest-values hash.
#[derive(Debug)]
struct LatestBacklog {
    /// Latest-hash field ([`keys::latest_field`]) -> newest sample of that series.
    fields: HashMap<String, Sample>,
    /// When the oldest of these became waiting: the `HSET` is due `latest_interval` later.
    since: Instant,
}

/// Keeps the newer of two samples of one series; on equal timestamps the later arrival wins,
/// as a flush always did.
fn keep_newest(fields: &mut HashMap<String, Sample>, field: String, sample: Sample) {
    match fields.get(&field) {
        Some(seen) if seen.timestamp > sample.timestamp => {}
        _ => {
            fields.insert(field, sample);
        }
    }
}

/// Counters shared with `/ready` and `/metrics`; atomics so readers never wait on the actor.
#[derive(Debug)]
pub struct WriterStats {
    /// Whether the last pipeline succeeded (false until the first success).
    pub redis_up: AtomicBool,
    /// Samples confirmed written.
    pub samples_stored: AtomicU64,
    /// Samples dropped because the pending bound was reached.
    pub samples_dropped: AtomicU64,
    /// Samples waiting to be written.
    pub samples_pending: AtomicU64,
    /// Batches (samples or record changes) queued or in flight: zero means everything handed
    /// to the writer is confirmed in Redis.
    pub batches_pending: AtomicU64,
    /// Pipelines that succeeded.
    pub pipelines_ok: AtomicU64,
    /// Pipelines that failed (each one is retried).
    pub pipelines_failed: AtomicU64,
    /// Redis commands sent in successful pipelines.
    pub commands_sent: AtomicU64,
    /// Microseconds spent in successful pipelines, for a mean latency.
    pub pipeline_micros: AtomicU64,
    /// Charge points whose latest-values hash is behind their raw chunks (coalescing, or the
    /// `HSET` in flight); zero after a drain.
    pub latest_pending: AtomicU64,
    /// Latest-values `HSET`s confirmed written, one per charge point and coalesced write; with
    /// `pipelines_ok` it shows how much the coalescing saves.
    pub latest_writes: AtomicU64,
    /// Samples per batch handed over by a buffer flush (batches with samples only), so an
    /// operator sees whether flushes are size- or age-triggered. The metrics crate's histogram
    /// (plain data behind a short lock, no exposition code here) rather than a home-made one.
    pub flush_batch_samples: Histogram,
    /// Seconds per successful Redis pipeline, the write latency.
    pub pipeline_seconds: Histogram,
    /// Why the last pipeline failed, until one succeeds (`OOM command not allowed ...` when
    /// Redis is at `maxmemory`): `/ready` shows it, since Redis still answers `PING` then.
    pub last_error: std::sync::Mutex<Option<String>>,
}

impl WriterStats {
    /// Whether the backlog has reached `max_pending_samples`: with the write-ahead log on, the
    /// charge point actors then answer MeterValues with an error (the charge point keeps and
    /// resends them) instead of the writer dropping acknowledged samples.
    pub fn backlog_full(&self, max_pending_samples: usize) -> bool {
        self.samples_pending.load(Ordering::Relaxed) as usize >= max_pending_samples
    }

    /// See [`WriterStats::last_error`].
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_last_error(&self, error: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = error;
    }
}

impl Default for WriterStats {
    fn default() -> Self {
        WriterStats {
            redis_up: AtomicBool::default(),
            samples_stored: AtomicU64::default(),
            samples_dropped: AtomicU64::default(),
            samples_pending: AtomicU64::default(),
            batches_pending: AtomicU64::default(),
            latest_pending: AtomicU64::default(),
            latest_writes: AtomicU64::default(),
            pipelines_ok: AtomicU64::default(),
            pipelines_failed: AtomicU64::default(),
            commands_sent: AtomicU64::default(),
            pipeline_micros: AtomicU64::default(),
            // 1, 2, 4, ... 8192 samples.
            flush_batch_samples: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            // 0.25 ms to about 4 s.
            pipeline_seconds: Histogram::new(exponential_buckets(0.00025, 2.0, 15)),
            last_error: std::sync::Mutex::new(None),
        }
    }
}

/// See the module documentation.
pub struct RedisWriter {
    /// Where the batches go.
    pool: Pool,
    /// Limits and timings.
    settings: WriterSettings,
    /// Batches not yet confirmed, oldest first; the in-flight ones stay here until confirmed so
    /// a failed pipeline simply retries them.
    queue: VecDeque<WriteBatch>,
    /// How many batches at the front of `queue` the current pipeline carries.
    in_flight: usize,
    /// Whether a pipeline is running (it may carry only latest-hash writes, so `in_flight`
    /// alone cannot tell).
    writing: bool,
    /// Per charge point, the newest sample per series already in the raw chunks but not yet in
    /// the latest-values hash; see the module documentation.
    latest_unwritten: FastHashMap<ChargePointId, LatestBacklog>,
    /// `latest_unwritten`'s charge points by `since`, oldest first (insertion order is time
    /// order), so finding what is due never scans the fleet: with 19,000 charge points a scan
    /// per pipeline was a fifth of the server's CPU (issue 5). Entries whose backlog was
    /// written meanwhile are skipped when they come up.
    latest_order: VecDeque<(Instant, ChargePointId)>,
    /// Charge points whose latest-hash write is due at the next opportunity: the session
    /// ended, or a failed write is owed.
    latest_due_now: Vec<ChargePointId>,
    /// The latest-hash writes the running pipeline carries, put back on failure.
    latest_in_flight: Vec<(ChargePointId, HashMap<String, Sample>)>,
    /// Samples in `queue`, checked against `max_pending_samples`.
    pending_samples: usize,
    /// Current retry delay; reset after a success.
    backoff: Duration,
    /// Whether a retry timer is armed (no new pipeline starts until it fires).
    retry_armed: bool,
    /// Cluster mode: when the last write round started, and whether a timer waits to start
    /// the next one ([`CLUSTER_ROUND_INTERVAL`]).
    last_round: Instant,
    round_armed: bool,
    /// Chunk keys whose expiry this process has already set, so EXPIREAT goes out once per chunk
    /// rather than once per flush. Cleared when large; re-sending it is harmless.
    expiring_chunks: HashSet<String>,
    /// Shutdown waiters, answered when the queue is empty.
    drain_waiters: Vec<oneshot::Sender<bool>>,
    /// Shared counters.
    stats: Arc<WriterStats>,
    /// The connection of the last successful pipeline, reused by the next one: every checkout
    /// from the pool costs a health check (UNWATCH + PING, a round trip), which would double the
    /// commands of a flush. Dropped (back to the pool, which checks it) after a failure.
    conn: Option<crate::redis_pool::Connection>,
}

/// Cluster mode: the shortest time between the starts of two write rounds. On one server a
/// round costs its commands only; on a cluster each round also ends with the WAL marks and, with
/// `redis.wait_replicas`, one `WAIT` per master (plus the `REPLCONF` answers it asks of each
/// replica), so rounds back to back under load cost ~0.006 commands per sample more (measured:
/// 0.021-0.026 against 0.015). Readings are answered from the write-ahead log and reads merge what
/// the writer holds, so 20 ms more before Redis has them changes nothing a charge point or the
/// API sees; a drain (shutdown, takeover) goes at once.
const CLUSTER_ROUND_INTERVAL: Duration = Duration::from_millis(20);

/// Bound on `expiring_chunks` before it is cleared: about one hour of a 50,000 station fleet.
const MAX_REMEMBERED_CHUNKS: usize = 100_000;

impl RedisWriter {
    /// Creates the writer; start it with `actix::Supervisor::start` so a crash restarts it with
    /// its queue intact.
    pub fn new(pool: Pool, settings: WriterSettings, stats: Arc<WriterStats>) -> Self {
        let backoff = settings.retry_initial;
        RedisWriter {
            pool,
            settings,
            queue: VecDeque::new(),
            in_flight: 0,
            writing: false,
            latest_unwritten: FastHashMap::default(),
            latest_order: VecDeque::new(),
            latest_due_now: Vec::new(),
            latest_in_flight: Vec::new(),
            pending_samples: 0,
            backoff,
            retry_armed: false,
            last_round: Instant::now(),
            round_armed: false,
            expiring_chunks: HashSet::new(),
            drain_waiters: Vec::new(),
            stats,
            conn: None,
        }
    }

    /// Drops the oldest not-in-flight samples until the queue is within its bound; logged as an
    /// error because it is data loss the operator must know about.
    fn enforce_bound(&mut self) {
        let mut dropped = 0usize;
        let mut index = self.in_flight;
        while self.pending_samples > self.settings.max_pending_samples && index < self.queue.len() {
            let batch = &mut self.queue[index];
            if batch.wal.is_some() {
                // In the write-ahead log: acknowledged and safe on disk, never dropped here
                // (the charge point actors refuse new readings instead, see `backlog_full`).
                index += 1;
                continue;
            }
            let excess = self.pending_samples - self.settings.max_pending_samples;
            let take = excess.min(batch.samples.len());
            batch.samples.drain(..take);
            self.pending_samples -= take;
            dropped += take;
            index += 1;
        }
        if dropped > 0 {
            self.stats
                .samples_dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
            log::error!(
                "Redis writer dropped {dropped} samples: {} are pending, over buffer.max_pending_samples = {}.",
                self.pending_samples,
                self.settings.max_pending_samples
            );
        }
        self.publish_pending();
    }

    /// Starts one pipeline for the oldest queued batches and the latest-hash writes that are
    /// due, unless one is running or a retry waits.
    fn write_next(&mut self, ctx: &mut Context<Self>) {
        if self.writing || self.retry_armed || self.round_armed {
            return;
        }
        if self.pool.is_cluster() && self.drain_waiters.is_empty() {
            let since = self.last_round.elapsed();
            if since < CLUSTER_ROUND_INTERVAL {
                self.round_armed = true;
                ctx.run_later(CLUSTER_ROUND_INTERVAL - since, |act, ctx| {
                    act.round_armed = false;
                    act.write_next(ctx);
                });
                return;
            }
            self.last_round = Instant::now();
        }
        let draining = !self.drain_waiters.is_empty();
        self.take_due_latest(draining);
        if self.queue.is_empty() && self.latest_in_flight.is_empty() {
            if self.latest_unwritten.is_empty() {
                for waiter in self.drain_waiters.drain(..) {
                    let _ = waiter.send(true);
                }
            }
            return;
        }
        let mut count = 0;
        let mut samples = 0;
        for batch in &self.queue {
            if count > 0 && samples + batch.samples.len() > self.settings.max_samples_per_pipeline {
                break;
            }
            samples += batch.samples.len();
            count += 1;
        }
        if self.pool.is_cluster() {
            self.write_per_charge_point(count, samples, ctx);
            return;
        }
        let (mut pipe, mut commands) = self.build_pipeline(count);
        for (cp, fields) in &self.latest_in_flight {
            commands += add_latest(&mut pipe, cp.as_str(), fields);
        }
        // The WAL marks say "Redis holds these records", so they end the pipeline: on one
        // server its commands run in order.
        if let Some(key) = &self.settings.wal_marks_key {
            commands += add_wal_marks(&mut pipe, key, self.queue.iter().take(count));
        }
        self.in_flight = count;
        self.writing = true;
        let pool = self.pool.clone();
        let held = self.conn.take();
        let started = Instant::now();
        let committed = committed_before(self.queue.iter().take(count));
        let work = async move {
            if let Some((committed, lsn)) = committed {
                committed.reached(lsn).await;
            }
            let mut conn = match held {
                Some(conn) => conn,
                None => pool.get().await.map_err(|e| e.to_string())?,
            };
            pipe.query_async::<()>(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok(conn)
        };
        ctx.spawn(work.into_actor(self).map(move |result, act, ctx| {
            let result = result.map(|conn| act.conn = Some(conn));
            act.finish(result, samples, commands, started.elapsed(), ctx);
        }));
    }

    /// The cluster form of a flush: one pipeline per charge point (its batches and its
    /// latest-values write), all sent at once, each confirmed on its own, so a master failing
    /// over holds back only the charge points whose slots it serves, and a retry re-sends
    /// nothing that was already written. The WAL marks of the charge points written follow as
    /// one more pipeline: they may only say "stored" once the data is.
    fn write_per_charge_point(&mut self, count: usize, samples: usize, ctx: &mut Context<Self>) {
        let mut groups: Vec<(ChargePointId, Vec<usize>)> = Vec::new();
        let mut group_of: FastHashMap<ChargePointId, usize> = FastHashMap::default();
        for (index, batch) in self.queue.iter().take(count).enumerate() {
            let group = *group_of
                .entry(batch.charge_point.clone())
                .or_insert_with(|| {
                    groups.push((batch.charge_point.clone(), Vec::new()));
                    groups.len() - 1
                });
            groups[group].1.push(index);
        }
        for (cp, _) in &self.latest_in_flight {
            if !group_of.contains_key(cp) {
                group_of.insert(cp.clone(), groups.len());
                groups.push((cp.clone(), Vec::new()));
            }
        }
        let mut pipelines = Vec::with_capacity(groups.len());
        let mut commands = 0;
        for (cp, indices) in &groups {
            let batches: Vec<&WriteBatch> = indices.iter().map(|&i| &self.queue[i]).collect();
            let (mut pipe, n) =
                build_pipeline(&batches, self.settings.raw_days, &mut self.expiring_chunks);
            commands += n;
            if let Some((_, fields)) = self.latest_in_flight.iter().find(|(c, _)| c == cp) {
                commands += add_latest(&mut pipe, cp.as_str(), fields);
            }
            pipelines.push(pipe);
        }
        let marks: Vec<Option<(ChargePointId, u64)>> = groups
            .iter()
            .map(|(cp, indices)| {
                let last = indices
                    .iter()
                    .map(|&i| &self.queue[i])
                    .filter(|b| !b.samples.is_empty())
                    .map(|b| b.wal_last)
                    .max()
                    .unwrap_or(0);
                (last > 0).then(|| (cp.clone(), last))
            })
            .collect();
        let marks_key = self.settings.wal_marks_key.clone();
        self.in_flight = count;
        self.writing = true;
        let pool = self.pool.clone();
        let held = self.conn.take();
        let started = Instant::now();
        let committed = committed_before(self.queue.iter().take(count));
        let work = async move {
            if let Some((committed, lsn)) = committed {
                committed.reached(lsn).await;
            }
            let mut conn = match held {
                Some(conn) => conn,
                None => match pool.get().await {
                    Ok(conn) => conn,
                    Err(e) => return (None, vec![Err(e.to_string()); pipelines.len()]),
                },
            };
            let mut results: Vec<Result<(), String>> = conn
                .query_each(&pipelines)
                .await
                .into_iter()
                .map(|r| r.map_err(|e| e.to_string()))
                .collect();
            if let Some(key) = marks_key {
                let mut cmd = redis::cmd("HSET");
                cmd.arg(key);
                let mut any = false;
                for (mark, result) in marks.iter().zip(&results) {
                    if let (Some((cp, lsn)), Ok(())) = (mark, result) {
                        cmd.arg(cp.as_str()).arg(*lsn);
                        any = true;
                    }
                }
                if any {
                    if let Err(error) = cmd.query_async::<()>(&mut conn).await {
                        // The data is in Redis, only the marks are not: report the charge
                        // points with marks as failed, so they are written (and marked) again.
                        for (mark, result) in marks.iter().zip(results.iter_mut()) {
                            if mark.is_some() && result.is_ok() {
                                *result = Err(error.to_string());
                            }
                        }
                    }
                }
            }
            let healthy = results.iter().all(Result::is_ok);
            (healthy.then_some(conn), results)
        };
        let commands = commands + u64::from(self.settings.wal_marks_key.is_some());
        ctx.spawn(work.into_actor(self).map(move |(conn, results), act, ctx| {
            act.conn = conn;
            act.finish_groups(groups, results, samples, commands, started.elapsed(), ctx);
        }));
    }

    /// Handles the per-charge-point outcome of [`Self::write_per_charge_point`]: the batches
    /// and latest-values writes of charge points written are confirmed; the others stay at the
    /// front of the queue, in their order, for the retry.
    fn finish_groups(
        &mut self,
        groups: Vec<(ChargePointId, Vec<usize>)>,
        results: Vec<Result<(), String>>,
        samples: usize,
        commands: u64,
        took: Duration,
        ctx: &mut Context<Self>,
    ) {
        let first_error = results.iter().find_map(|r| r.as_ref().err().cloned());
        let Some(error) = first_error else {
            self.finish(Ok(()), samples, commands, took, ctx);
            return;
        };
        let count = self.in_flight;
        let mut written_batch = vec![false; count];
        let mut written_cps: HashSet<ChargePointId> = HashSet::new();
        for ((cp, indices), result) in groups.into_iter().zip(&results) {
            if result.is_ok() {
                for i in indices {
                    written_batch[i] = true;
                }
                written_cps.insert(cp);
            }
        }
        let head: Vec<WriteBatch> = self.queue.drain(..count).collect();
        let mut kept = Vec::new();
        let mut written = 0;
        for (batch, done) in head.into_iter().zip(written_batch) {
            if done {
                written += batch.samples.len();
                self.note_written(batch);
            } else {
                kept.push(batch);
            }
        }
        for batch in kept.into_iter().rev() {
            self.queue.push_front(batch);
        }
        self.pending_samples -= written;
        self.stats
            .samples_stored
            .fetch_add(written as u64, Ordering::Relaxed);
        let (done, owed): (Vec<_>, Vec<_>) = std::mem::take(&mut self.latest_in_flight)
            .into_iter()
            .partition(|(cp, _)| written_cps.contains(cp));
        self.stats
            .latest_writes
            .fetch_add(done.len() as u64, Ordering::Relaxed);
        self.latest_in_flight = owed;
        self.publish_pending();
        // What failed is retried like a failed pipeline (backoff, latest writes owed).
        self.in_flight = 0;
        self.finish(Err(error), samples, commands, took, ctx);
    }

    /// Moves the latest-hash writes that are due (every one when `all`) to `latest_in_flight`.
    fn take_due_latest(&mut self, all: bool) {
        if all {
            self.latest_order.clear();
            self.latest_due_now.clear();
            for (cp, backlog) in self.latest_unwritten.drain() {
                self.latest_in_flight.push((cp, backlog.fields));
            }
            return;
        }
        for cp in std::mem::take(&mut self.latest_due_now) {
            if let Some(backlog) = self.latest_unwritten.remove(&cp) {
                self.latest_in_flight.push((cp, backlog.fields));
            }
        }
        let Some(cutoff) = Instant::now().checked_sub(self.settings.latest_interval) else {
            return;
        };
        while let Some((since, _)) = self.latest_order.front() {
            if *since > cutoff {
                break;
            }
            let Some((since, cp)) = self.latest_order.pop_front() else {
                break;
            };
            if self
                .latest_unwritten
                .get(&cp)
                .is_some_and(|backlog| backlog.since == since)
            {
                if let Some(backlog) = self.latest_unwritten.remove(&cp) {
                    self.latest_in_flight.push((cp, backlog.fields));
                }
            }
        }
    }

    /// The backlog of `cp`, created (and queued by time) if it has none.
    fn latest_backlog(&mut self, cp: ChargePointId) -> &mut LatestBacklog {
        match self.latest_unwritten.entry(cp) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let since = Instant::now();
                self.latest_order.push_back((since, entry.key().clone()));
                entry.insert(LatestBacklog {
                    fields: HashMap::new(),
                    since,
                })
            }
        }
    }

    /// Records the newest sample per series of a batch that is now in the raw chunks; a session
    /// end makes the charge point's latest-hash write due at once.
    fn note_written(&mut self, batch: WriteBatch) {
        let ended = batch.ops.iter().any(|op| {
            matches!(
                op,
                StoreOp::Presence {
                    connected: false,
                    ..
                }
            )
        });
        if batch.samples.is_empty() && !ended {
            return;
        }
        if ended {
            self.latest_due_now.push(batch.charge_point.clone());
        }
        if batch.samples.is_empty() {
            return;
        }
        let backlog = self.latest_backlog(batch.charge_point);
        for sample in batch.samples {
            keep_newest(&mut backlog.fields, keys::latest_field(&sample), sample);
        }
    }

    /// Publishes the size of what waits, for `/ready`, `/metrics` and the tests.
    fn publish_pending(&self) {
        let stats = &self.stats;
        stats
            .samples_pending
            .store(self.pending_samples as u64, Ordering::Relaxed);
        stats
            .batches_pending
            .store(self.queue.len() as u64, Ordering::Relaxed);
        stats.latest_pending.store(
            (self.latest_unwritten.len() + self.latest_in_flight.len()) as u64,
            Ordering::Relaxed,
        );
    }

    /// Encodes the first `count` batches into one pipeline; returns it with its command count.
    fn build_pipeline(&mut self, count: usize) -> (Pipeline, u64) {
        let batches: Vec<&WriteBatch> = self.queue.iter().take(count).collect();
        build_pipeline(&batches, self.settings.raw_days, &mut self.expiring_chunks)
    }

    /// Handles the outcome of a pipeline: confirm and continue, or keep and retry later.
    fn finish(
        &mut self,
        result: Result<(), String>,
        samples: usize,
        commands: u64,
        took: Duration,
        ctx: &mut Context<Self>,
    ) {
        let count = std::mem::take(&mut self.in_flight);
        self.writing = false;
        match result {
            Ok(()) => {
                self.stats
                    .latest_writes
                    .fetch_add(self.latest_in_flight.len() as u64, Ordering::Relaxed);
                self.latest_in_flight.clear();
                let mut written = 0;
                for _ in 0..count {
                    if let Some(batch) = self.queue.pop_front() {
                        written += batch.samples.len();
                        self.note_written(batch);
                    }
                }
                debug_assert!(written <= samples);
                self.pending_samples -= written;
                let stats = &self.stats;
                if !stats.redis_up.swap(true, Ordering::Relaxed) {
                    log::info!("Redis is reachable; the writer is writing.");
                }
                if stats.last_error().is_some() {
                    stats.set_last_error(None);
                }
                stats
                    .samples_stored
                    .fetch_add(written as u64, Ordering::Relaxed);
                stats.pipelines_ok.fetch_add(1, Ordering::Relaxed);
                stats.commands_sent.fetch_add(commands, Ordering::Relaxed);
                stats
                    .pipeline_micros
                    .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
                stats.pipeline_seconds.observe(took.as_secs_f64());
                self.publish_pending();
                self.backoff = self.settings.retry_initial;
                self.write_next(ctx);
            }
            Err(error) => {
                self.stats.pipelines_failed.fetch_add(1, Ordering::Relaxed);
                self.stats.set_last_error(Some(error.clone()));
                if self.stats.redis_up.swap(false, Ordering::Relaxed) {
                    log::warn!(
                        "Redis write failed ({error}); keeping {} samples and retrying with backoff.",
                        self.pending_samples
                    );
                } else {
                    log::debug!("Redis write failed again ({error}).");
                }
                // Chunk expiry may not have been set; forget what this pipeline claimed.
                self.expiring_chunks.clear();
                self.requeue_latest();
                self.retry_armed = true;
                let delay = self.backoff;
                self.backoff = (self.backoff * 2).min(self.settings.retry_max);
                ctx.run_later(delay, |act, ctx| {
                    act.retry_armed = false;
                    act.write_next(ctx);
                });
            }
        }
    }
}

impl RedisWriter {
    /// Puts the latest-hash writes of a failed (or abandoned) pipeline back, due at once,
    /// keeping whichever sample per series is newer.
    fn requeue_latest(&mut self) {
        for (cp, fields) in std::mem::take(&mut self.latest_in_flight) {
            self.latest_due_now.push(cp.clone());
            let backlog = self.latest_backlog(cp);
            for (field, sample) in fields {
                keep_newest(&mut backlog.fields, field, sample);
            }
        }
    }
}

/// Encodes batches into one pipeline and returns it with its command count: one `APPEND` per
/// (charge point, hour) touched, an `EXPIREAT` for chunks not yet in `expiring_chunks` (which
/// it updates), and the record changes. The latest-values `HSET` is not part of a flush: the
/// writer adds it coalesced ([`add_latest`]). Public so that the flush benchmark measures this
/// very code; the writer is its only other caller.
pub fn build_pipeline(
    batches: &[&WriteBatch],
    raw_days: u32,
    expiring_chunks: &mut HashSet<String>,
) -> (Pipeline, u64) {
    let mut pipe = redis::pipe();
    let mut commands = 0u64;
    // Group samples per chunk key so one flush is one APPEND per (charge point, hour).
    let mut chunks: FastHashMap<(String, i64), Vec<&Sample>> = FastHashMap::default();
    for batch in batches {
        let cp = batch.charge_point.as_str();
        for sample in &batch.samples {
            let hour = sample.timestamp.timestamp().div_euclid(3600);
            chunks
                .entry((keys::raw_chunk(cp, hour), hour))
                .or_default()
                .push(sample);
        }
        for op in &batch.ops {
            commands += add_op(&mut pipe, cp, op);
        }
    }
    for ((key, hour), samples) in chunks {
        let mut block = Vec::with_capacity(samples.len() * 6 + 32);
        chunk::encode_block(&samples, &mut block);
        pipe.cmd("APPEND").arg(&key).arg(block).ignore();
        commands += 1;
        if !expiring_chunks.contains(&key) {
            pipe.cmd("EXPIREAT")
                .arg(&key)
                .arg(keys::raw_chunk_expires_at(hour, raw_days))
                .ignore();
            commands += 1;
            if expiring_chunks.len() >= MAX_REMEMBERED_CHUNKS {
                expiring_chunks.clear();
            }
            expiring_chunks.insert(key);
        }
    }
    (pipe, commands)
}

/// The log's commit watch and the newest record among `batches`, which must be on disk before
/// any of them is written ([`crate::wal::Committed`]); `None` when no batch comes from the log.
fn committed_before<'a>(
    batches: impl Iterator<Item = &'a WriteBatch>,
) -> Option<(crate::wal::Committed, u64)> {
    let mut newest: Option<(&WalPin, u64)> = None;
    for batch in batches {
        if let Some(pin) = &batch.wal {
            let lsn = batch.wal_last.max(pin.lsn());
            if newest.is_none_or(|(_, n)| lsn > n) {
                newest = Some((pin, lsn));
            }
        }
    }
    newest.map(|(pin, lsn)| (pin.committed(), lsn))
}

/// Appends one `HSET <marks> cp lsn ...` with the highest logged sequence number per charge
/// point among `batches`' samples, last in the pipeline; returns the commands added (0 or 1).
fn add_wal_marks<'a>(
    pipe: &mut Pipeline,
    key: &str,
    batches: impl Iterator<Item = &'a WriteBatch>,
) -> u64 {
    let mut marks: FastHashMap<&str, u64> = FastHashMap::default();
    for batch in batches.filter(|b| b.wal_last > 0 && !b.samples.is_empty()) {
        let mark = marks.entry(batch.charge_point.as_str()).or_default();
        *mark = (*mark).max(batch.wal_last);
    }
    if marks.is_empty() {
        return 0;
    }
    let mut cmd = redis::cmd("HSET");
    cmd.arg(key);
    for (cp, lsn) in marks {
        cmd.arg(cp).arg(lsn);
    }
    pipe.add_command(cmd).ignore();
    1
}

/// Appends one `HSET ocpp:{cp}:latest field value ...` with the given newest samples; returns
/// the number of commands added (0 when there is nothing to write).
pub fn add_latest(pipe: &mut Pipeline, cp: &str, fields: &HashMap<String, Sample>) -> u64 {
    if fields.is_empty() {
        return 0;
    }
    let mut cmd = redis::cmd("HSET");
    cmd.arg(keys::latest(cp));
    for (field, sample) in fields {
        cmd.arg(field).arg(chunk::encode_sample_value(sample));
    }
    pipe.add_command(cmd).ignore();
    1
}

/// Appends the commands of one record change; returns how many it added.
fn add_op(pipe: &mut Pipeline, cp: &str, op: &StoreOp) -> u64 {
    match op {
        StoreOp::Booted(boot) => {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(keys::info(cp))
                .arg("vendor")
                .arg(&boot.vendor)
                .arg("model")
                .arg(&boot.model);
            let optional = [
                ("serial_number", &boot.serial_number),
                ("charge_box_serial_number", &boot.charge_box_serial_number),
                ("firmware_version", &boot.firmware_version),
                ("iccid", &boot.iccid),
                ("imsi", &boot.imsi),
                ("meter_type", &boot.meter_type),
                ("meter_serial_number", &boot.meter_serial_number),
                ("ocpp_version", &boot.ocpp_version),
            ];
            for (field, value) in optional {
                if let Some(value) = value {
                    cmd.arg(field).arg(value);
                }
            }
            pipe.add_command(cmd).ignore();
            pipe.cmd("SADD").arg(keys::CHARGE_POINTS).arg(cp).ignore();
            2
        }
        StoreOp::Presence { connected, at } => {
            pipe.cmd("HSET")
                .arg(keys::info(cp))
                .arg("connected")
                .arg(if *connected { "1" } else { "0" })
                .arg("last_seen")
                .arg(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .ignore();
            pipe.cmd("SADD").arg(keys::CHARGE_POINTS).arg(cp).ignore();
            2
        }
        StoreOp::Status(status) => {
            let value = serde_json::json!({
                "connector_id": status.connector_id,
                "status": status.status,
                "error_code": status.error_code,
                "info": status.info,
                "timestamp": status.timestamp,
                "vendor_id": status.vendor_id,
                "vendor_error_code": status.vendor_error_code,
            });
            pipe.cmd("HSET")
                .arg(keys::connectors(cp))
                .arg(status.connector_id)
                .arg(value.to_string())
                .ignore();
            1
        }
        StoreOp::TransactionStarted {
            transaction_id,
            connector_id,
            id_tag,
            meter_start,
            timestamp,
            station_transaction_id,
        } => {
            let mut record = redis::cmd("HSET");
            record
                .arg(keys::transaction(*transaction_id))
                .arg("charge_point_id")
                .arg(cp)
                .arg("connector_id")
                .arg(connector_id)
                .arg("id_tag")
                .arg(id_tag)
                .arg("meter_start")
                .arg(meter_start)
                .arg("start_time")
                .arg(timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            let mut commands = 4;
            if let Some(station_id) = station_transaction_id {
                record.arg("station_transaction_id").arg(station_id);
                // The charge point's id -> integer id map, in its own slot: a retried or late
                // event on any instance finds the same integer id.
                pipe.cmd("HSET")
                    .arg(keys::station_transactions(cp))
                    .arg(station_id)
                    .arg(transaction_id)
                    .ignore();
                commands += 1;
            }
            pipe.add_command(record).ignore();
            pipe.cmd("ZADD")
                .arg(keys::transactions(cp))
                .arg(timestamp.timestamp_millis())
                .arg(transaction_id)
                .ignore();
            // The fleet-wide and per-idTag indexes of the transaction listings, in the same
            // pipeline: no extra round trip (see `store::transactions`).
            pipe.cmd("ZADD")
                .arg(keys::FLEET_TRANSACTIONS)
                .arg(timestamp.timestamp_millis())
                .arg(transaction_id)
                .ignore();
            // A transaction started without a token (OCPP 2.0.1 allows it) has no idTag to
            // list it under.
            if id_tag.is_empty() {
                commands -= 1;
            } else {
                pipe.cmd("ZADD")
                    .arg(keys::id_tag_transactions(id_tag))
                    .arg(timestamp.timestamp_millis())
                    .arg(transaction_id)
                    .ignore();
            }
            commands
        }
        StoreOp::TransactionStopped {
            transaction_id,
            id_tag,
            meter_stop,
            timestamp,
            reason,
        } => {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(keys::transaction(*transaction_id))
                .arg("charge_point_id")
                .arg(cp)
                .arg("meter_stop")
                .arg(meter_stop)
                .arg("stop_time")
                .arg(timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            if let Some(tag) = id_tag {
                cmd.arg("stop_id_tag").arg(tag);
            }
            if let Some(reason) = reason {
                cmd.arg("stop_reason").arg(reason);
            }
            pipe.add_command(cmd).ignore();
            1
        }
        StoreOp::Stats { document, ttl_secs } => {
            pipe.cmd("SET")
                .arg(keys::stats(cp))
                .arg(document)
                .arg("EX")
                .arg((*ttl_secs).max(1))
                .ignore();
            1
        }
    }
}

impl Actor for RedisWriter {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Writing may already be due after a supervisor restart.
        self.write_next(ctx);
        // Coalesced latest-hash writes fall due by time alone; a tick a fraction of the interval
        // keeps the lag close to it without a timer per charge point.
        let tick = (self.settings.latest_interval / 4)
            .clamp(Duration::from_millis(50), Duration::from_secs(1));
        ctx.run_interval(tick, |act, ctx| {
            if !act.latest_unwritten.is_empty() {
                act.write_next(ctx);
            }
        });
    }
}

impl actix::Supervised for RedisWriter {
    fn restarting(&mut self, _ctx: &mut Self::Context) {
        // The queue is kept; whatever was in flight is simply written again (reads de-duplicate).
        log::warn!(
            "Redis writer restarting with {} pending samples.",
            self.pending_samples
        );
        self.in_flight = 0;
        self.writing = false;
        self.retry_armed = false;
        self.requeue_latest();
    }
}

impl Handler<WriteBatch> for RedisWriter {
    type Result = ();

    fn handle(&mut self, batch: WriteBatch, ctx: &mut Self::Context) {
        if batch.samples.is_empty() && batch.ops.is_empty() {
            return;
        }
        if !batch.samples.is_empty() {
            self.stats
                .flush_batch_samples
                .observe(batch.samples.len() as f64);
        }
        self.pending_samples += batch.samples.len();
        self.queue.push_back(batch);
        self.enforce_bound();
        self.write_next(ctx);
    }
}

impl Handler<Drain> for RedisWriter {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        self.write_next(ctx);
        Box::pin(async move { rx.await.unwrap_or(false) })
    }
}

impl Handler<PendingSamples> for RedisWriter {
    type Result = MessageResult<PendingSamples>;

    fn handle(
        &mut self,
        PendingSamples(cp): PendingSamples,
        _: &mut Self::Context,
    ) -> Self::Result {
        MessageResult(
            self.queue
                .iter()
                .filter(|batch| batch.charge_point == cp)
                .flat_map(|batch| batch.samples.iter().cloned())
                .collect(),
        )
    }
}

impl Handler<UnwrittenLatest> for RedisWriter {
    type Result = MessageResult<UnwrittenLatest>;

    fn handle(
        &mut self,
        UnwrittenLatest(cp): UnwrittenLatest,
        _: &mut Self::Context,
    ) -> Self::Result {
        let mut newest: HashMap<String, Sample> = HashMap::new();
        let waiting = self
            .latest_unwritten
            .get(&cp)
            .map(|backlog| &backlog.fields)
            .into_iter()
            .chain(
                self.latest_in_flight
                    .iter()
                    .filter(|(id, _)| *id == cp)
                    .map(|(_, fields)| fields),
            );
        for fields in waiting {
            for (field, sample) in fields {
                keep_newest(&mut newest, field.clone(), sample.clone());
            }
        }
        for batch in self.queue.iter().filter(|batch| batch.charge_point == cp) {
            for sample in &batch.samples {
                keep_newest(&mut newest, keys::latest_field(sample), sample.clone());
            }
        }
        MessageResult(newest.into_values().collect())
    }
}
