//! `Aggregator`: hourly and daily roll-ups of every numeric sample on the live stream.
//!
//! It pre-aggregates in memory, per charge point, bucket and series (count, sum, min, max,
//! first, last) and keeps the register readings of energy series, then writes each charge
//! point's partials [`FLUSH_INTERVAL`] after its first pending sample (and everything on
//! [`Flush`]) with one `EVALSHA` of the merge script (`store/aggregate_merge.lua`) per charge
//! point, pipelined in small chunks. Charge points become due one after the other, as their
//! samples arrive, so a fleet's flushes are spread over the interval instead of coming as one
//! burst that holds Redis (and every read behind it) for seconds. The script merges the
//! partials into the bucket hashes and computes energy against the baseline stored in Redis,
//! atomically, so flushes, restarts and several server instances add up instead of overwriting
//! each other. Each flush carries this instance's id and a sequence number that the script
//! records, so a retried flush (after an error where Redis may have executed part of it) is
//! applied once. While Redis is away the flush in flight is retried with backoff and new
//! partials keep accumulating, bounded by [`MAX_PENDING_ENTRIES`] (past it batches are dropped,
//! counted and logged).

use std::collections::{BTreeMap, HashSet, VecDeque};

use crate::FastHashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::redis_pool::Pool;
use actix::prelude::*;
use deadpool_redis::redis::{self, ErrorKind, ServerErrorKind};
use tokio::sync::oneshot;

use crate::backlog::Backlog;
use crate::id::ChargePointId;
use crate::store::aggregates::{Period, Rollup, SeriesKey, MAX_PLAUSIBLE_POWER_W, MERGE_SCRIPT};
use crate::store::fleet_rollup::{self, FLEET_SCRIPT};
use crate::store::keys;
use crate::stream::SampleBatch;
use crate::wal::WalPin;

/// How long a charge point's roll-ups wait in memory after its first pending sample, by default
/// (`buffer.rollup_interval_secs`). Each write costs about 8 Redis commands per charge point (one `EVALSHA` and the `HMGET`/`HSET`/
/// `EXPIREAT` inside it) and ~0.2 ms of Redis CPU, whatever the number of samples: with
/// 19,000 charge points a 15 s interval kept Redis a third busy and put the merge bursts into
/// the fleet's ack latency (p99 4-24 ms against 1.6-2.1 ms at 60 s, issue 5). 30 s is the
/// crash window the raw buffers already have (`buffer.max_age_secs`); register energy is not
/// lost in a crash either way (the baseline in Redis spans the gap). Reads and shutdown flush
/// first, so nothing else waits on it.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(30);

/// Bound on what waits in memory (statistics entries plus register readings) while Redis is
/// away: about 100 MB. Past it, new batches are dropped and counted.
pub const MAX_PENDING_ENTRIES: usize = 1_000_000;

/// Charge points per pipeline of a flush (see `Aggregator::send`). Each script costs Redis
/// ~0.2 ms, and Redis runs a pipeline's commands back to back: 32 keep another client's command
/// (an API read) waiting at most ~6 ms, where 256 held it ~50 ms (issue 13).
const SCRIPTS_PER_PIPELINE: usize = 32;

/// How often the aggregator looks for charge points whose partials are due: the spread of the
/// flushes is this fine-grained (or the flush interval, if shorter).
const DUE_CHECK: Duration = Duration::from_millis(250);

/// Bound on the buckets whose expiry this process remembers having set.
const MAX_REMEMBERED_EXPIRIES: usize = 100_000;

/// Roll-up settings, from `[retention]` and `[redis]`.
#[derive(Debug, Clone)]
pub struct AggregatorSettings {
    /// Days hourly buckets live after their end.
    pub hourly_days: u32,
    /// Days daily buckets live after their end.
    pub daily_days: u32,
    /// First retry delay after a failed flush.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// How long partials wait after their first sample (`buffer.rollup_interval_secs`, default [`FLUSH_INTERVAL`]; tests
    /// shorten it).
    pub flush_interval: Duration,
    /// Field of the roll-up state hash where the merge script records the write-ahead log
    /// sequence number it applied ([`keys::wal_rollup_mark_field`]); `None` without a log.
    pub wal_mark_field: Option<String>,
    /// Samples timestamped further than this in the future are left out of the roll-ups (the
    /// alert supervisor flags them as `clock_skew`): a clock that is wrong must not skew the
    /// buckets, nor become an energy baseline that hides every later reading.
    pub max_clock_skew: Duration,
}

/// Resolve once everything received before this message is in Redis (`false` if the actor
/// stopped first). Used by shutdown, after the writer's drain, and by the aggregates API for
/// read-your-writes.
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct Flush;

/// Resolve once everything received for one charge point before this message is in Redis
/// (`false` if the actor stopped first). The aggregates API sends this for read-your-writes
/// instead of [`Flush`]: a read then waits for one `EVALSHA`, not for one per charge point of
/// the whole fleet (issue 5, target 5).
#[derive(Debug, Message)]
#[rtype(result = "bool")]
pub struct FlushChargePoint(pub ChargePointId);

/// Counters for logs, metrics and tests; atomics so readers never wait on the actor.
#[derive(Debug, Default)]
pub struct AggregatorStats {
    /// Numeric samples rolled up.
    pub samples: AtomicU64,
    /// Samples dropped because the pending bound was reached.
    pub samples_dropped: AtomicU64,
    /// Flushes written.
    pub flushes_ok: AtomicU64,
    /// Flushes that failed (each one is retried).
    pub flushes_failed: AtomicU64,
    /// Script calls sent in successful flushes.
    pub script_calls: AtomicU64,
}

/// Partials of one charge point.
#[derive(Debug, Default, Clone)]
struct Partial {
    /// Statistics per (period, bucket start ms, series).
    stats: BTreeMap<(Period, i64, SeriesKey), Rollup>,
    /// Register readings per series, `(t_ms, value)`, in arrival order.
    readings: BTreeMap<SeriesKey, Vec<(i64, f64)>>,
    /// The write-ahead log's hold on the oldest record folded in here (it covers the later
    /// ones of this charge point), released with the flush that applies them.
    wal: Option<Arc<WalPin>>,
    /// Highest log sequence number folded in; the merge script stores it with the roll-ups
    /// ([`keys::wal_rollup_mark_field`]) so a replay skips what they already hold.
    wal_last: u64,
    /// When the first sample of this partial arrived; it is due a flush interval later. Also
    /// names the partial's entry in the due queue (an entry whose time differs is stale).
    since: Option<Instant>,
    /// Batches folded in, counted off the [`Backlog`] once this partial is written.
    batches: u32,
}

impl Partial {
    fn entries(&self) -> usize {
        self.stats.len() + self.readings.values().map(Vec::len).sum::<usize>()
    }
}

/// A flush being written (or retried), kept verbatim so a retry carries the same sequence
/// number and content.
struct InFlight {
    seq: u64,
    partials: Vec<(ChargePointId, Partial)>,
}

/// See the module documentation.
pub struct Aggregator {
    /// Redis.
    pool: Pool,
    /// Retention and timing.
    settings: AggregatorSettings,
    /// Identifies this process to the merge script (`applied:<instance>`).
    instance: String,
    /// Partials not yet handed to a flush.
    pending: FastHashMap<ChargePointId, Partial>,
    /// Charge points in the order their partials started, with that time: the front is the
    /// next due. Entries whose partial was flushed meanwhile (by [`Flush`] or
    /// [`FlushChargePoint`]) are skipped when they come up.
    due: VecDeque<(Instant, ChargePointId)>,
    /// Entries in `pending`, checked against [`MAX_PENDING_ENTRIES`].
    pending_entries: usize,
    /// The flush being written, if any.
    in_flight: Option<InFlight>,
    /// Whether the in-flight flush has a request running (false while a retry waits).
    running: bool,
    /// Sequence number of the next flush.
    next_seq: u64,
    /// Current retry delay.
    backoff: Duration,
    /// SHA1 of the loaded script; `None` until `SCRIPT LOAD` answered, and after `NOSCRIPT`.
    sha: Option<(String, String)>,
    /// Buckets whose expiry this process has set, so `EXPIREAT` goes out once per bucket.
    expiring: HashSet<String>,
    /// Charge points whose state hash expiry this process has refreshed.
    state_expiring: HashSet<ChargePointId>,
    /// Flush waiters and the sequence number whose success answers them.
    waiters: Vec<(u64, oneshot::Sender<bool>)>,
    /// Charge points a [`FlushChargePoint`] waits for while another flush is in flight: the
    /// next flush takes only these, unless `want_all`.
    wanted: HashSet<ChargePointId>,
    /// A [`Flush`] waits for the next flush, which must then take everything pending.
    want_all: bool,
    /// Reused connection (a pool checkout costs a health-check round trip).
    conn: Option<crate::redis_pool::Connection>,
    /// Shared counters.
    stats: Arc<AggregatorStats>,
    /// Batches on their way per charge point (the stream counts them in, this actor off).
    backlog: Arc<Backlog>,
}

impl Aggregator {
    /// Creates the aggregator; start it with `actix::Supervisor::start` and subscribe it to the
    /// sample stream with [`crate::stream::SampleStream::subscribe_tracked`], passing that
    /// stream's [`crate::stream::SampleStream::rollups`] as `backlog`. A batch sent to it any
    /// other way must be counted in `backlog` first.
    pub fn new(
        pool: Pool,
        settings: AggregatorSettings,
        stats: Arc<AggregatorStats>,
        backlog: Arc<Backlog>,
    ) -> Self {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            hasher.write_u128(now.as_nanos());
        }
        Aggregator {
            pool,
            backoff: settings.retry_initial,
            settings,
            instance: format!("{:016x}", hasher.finish()),
            pending: FastHashMap::default(),
            due: VecDeque::new(),
            pending_entries: 0,
            in_flight: None,
            running: false,
            next_seq: 1,
            sha: None,
            expiring: HashSet::new(),
            state_expiring: HashSet::new(),
            waiters: Vec::new(),
            wanted: HashSet::new(),
            want_all: false,
            conn: None,
            stats,
            backlog,
        }
    }

    /// Hands everything pending to a new flush unless one is in flight.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_some() {
            return; // written, or retried, first; the next flush takes what is pending
        }
        if self.pending.is_empty() {
            self.answer_waiters(u64::MAX);
            return;
        }
        let partials: Vec<(ChargePointId, Partial)> = self.pending.drain().collect();
        self.due.clear();
        self.pending_entries = 0;
        self.wanted.clear();
        self.want_all = false;
        self.start(partials, ctx);
    }

    /// Hands the partials that are due (a flush interval after their first sample) to a new
    /// flush unless one is in flight (they wait for the next check then).
    fn flush_due(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_some() {
            return;
        }
        let now = Instant::now();
        let interval = self.settings.flush_interval;
        let mut partials = Vec::new();
        while let Some((since, _)) = self.due.front() {
            if now.saturating_duration_since(*since) < interval {
                break;
            }
            let Some((since, cp)) = self.due.pop_front() else {
                break;
            };
            if self
                .pending
                .get(&cp)
                .is_some_and(|p| p.since == Some(since))
            {
                if let Some(partial) = self.pending.remove(&cp) {
                    self.pending_entries = self.pending_entries.saturating_sub(partial.entries());
                    self.wanted.remove(&cp);
                    partials.push((cp, partial));
                }
            }
        }
        if !partials.is_empty() {
            self.start(partials, ctx);
        }
    }

    /// Hands the pending partials of the charge points in `wanted` to a new flush unless one is
    /// in flight; everything pending if a [`Flush`] waits (or if none of them has partials left,
    /// so no waiter is left without a flush to answer it).
    fn flush_wanted(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_some() {
            return;
        }
        if self.want_all {
            self.flush(ctx);
            return;
        }
        let mut partials = Vec::with_capacity(self.wanted.len());
        for cp in self.wanted.drain() {
            if let Some(partial) = self.pending.remove(&cp) {
                self.pending_entries = self.pending_entries.saturating_sub(partial.entries());
                partials.push((cp, partial));
            }
        }
        if partials.is_empty() {
            self.flush(ctx);
            return;
        }
        self.start(partials, ctx);
    }

    /// Makes `partials` the in-flight flush under the next sequence number and sends it. One
    /// flush at a time keeps every charge point's sequence numbers increasing, which is all the
    /// merge script's retry check needs: flushes of different charge points may interleave.
    fn start(&mut self, mut partials: Vec<(ChargePointId, Partial)>, ctx: &mut Context<Self>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        partials.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        self.in_flight = Some(InFlight { seq, partials });
        self.send(ctx);
    }

    /// Sends the in-flight flush: one `EVALSHA` per charge point, in pipelines of
    /// [`SCRIPTS_PER_PIPELINE`] on one connection, one after the other. Chunks keep each packed
    /// pipeline small (one pipeline for 19,000 charge points was ~100 MB, freshly allocated and
    /// page-faulted every flush) and let other clients' commands (an API read) in between.
    /// The script of the merge must be loaded first (its SHA names it in every call).
    fn send(&mut self, ctx: &mut Context<Self>) {
        let Some((sha, fleet_sha)) = self.sha.clone() else {
            self.load_script(ctx);
            return;
        };
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        let now_s = chrono::Utc::now().timestamp();
        let mut pipes = Vec::with_capacity(flight.partials.len().div_ceil(SCRIPTS_PER_PIPELINE));
        let mut scratch = String::new();
        for chunk in flight.partials.chunks(SCRIPTS_PER_PIPELINE) {
            let mut pipe = redis::Pipeline::with_capacity(chunk.len());
            for (cp, partial) in chunk {
                let cmd = self.invocation(&sha, cp, partial, flight.seq, now_s, &mut scratch);
                pipe.add_command(cmd);
            }
            let ids: Vec<ChargePointId> = chunk.iter().map(|(cp, _)| cp.clone()).collect();
            pipes.push((pipe, ids));
        }
        let calls = flight.partials.len() as u64;
        self.in_flight = Some(flight);
        let retention = (self.settings.hourly_days, self.settings.daily_days);
        // Nothing of a record reaches Redis before the record is on disk (`wal::Committed`).
        let committed = self.in_flight.as_ref().and_then(|flight| {
            flight
                .partials
                .iter()
                .filter_map(|(_, p)| p.wal.as_ref().map(|pin| (pin, p.wal_last.max(pin.lsn()))))
                .max_by_key(|(_, lsn)| *lsn)
                .map(|(pin, lsn)| (pin.committed(), lsn))
        });
        // Expiry flags were computed now; forget them again if this flush fails.
        let conn = self.take_connection();
        let work = async move {
            if let Some((committed, lsn)) = committed {
                committed.reached(lsn).await;
            }
            let mut conn = conn.await.map_err(|e| (e.to_string(), false))?;
            let noscript = |e: &redis::RedisError| {
                (
                    e.to_string(),
                    e.kind() == ErrorKind::Server(ServerErrorKind::NoScript),
                )
            };
            for (pipe, ids) in pipes {
                let replies: Vec<redis::Value> = pipe
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| noscript(&e))?;
                // Then the fleet roll-up, from the summaries the merges returned: after them,
                // so a failure here retries both (the merges as no-ops that still answer).
                if let Some(cmd) = fleet_invocation(&fleet_sha, &ids, replies, retention) {
                    cmd.query_async::<()>(&mut conn)
                        .await
                        .map_err(|e| noscript(&e))?;
                }
            }
            Ok(conn)
        };
        ctx.spawn(work.into_actor(self).map(move |result, act, ctx| {
            act.running = false;
            match result {
                Ok(conn) => {
                    act.conn = Some(conn);
                    act.finished(calls, ctx);
                }
                Err((error, noscript)) => act.failed(error, noscript, ctx),
            }
        }));
    }

    /// Marks a write as running and hands it the reused connection, or a new one from the pool.
    fn take_connection(
        &mut self,
    ) -> impl std::future::Future<
        Output = Result<crate::redis_pool::Connection, deadpool_redis::PoolError>,
    > + 'static {
        self.running = true;
        let pool = self.pool.clone();
        let held = self.conn.take();
        async move {
            match held {
                Some(conn) => Ok(conn),
                None => pool.get().await,
            }
        }
    }

    /// Loads the merge script (at start, and after Redis lost it), then sends the flush in
    /// flight.
    fn load_script(&mut self, ctx: &mut Context<Self>) {
        let conn = self.take_connection();
        let work = async move {
            let mut conn = conn.await.map_err(|e| e.to_string())?;
            let mut shas = Vec::with_capacity(2);
            for script in [MERGE_SCRIPT, FLEET_SCRIPT] {
                let sha = redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(script)
                    .query_async::<String>(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                shas.push(sha);
            }
            let fleet = shas.pop().unwrap_or_default();
            let merge = shas.pop().unwrap_or_default();
            Ok::<_, String>((conn, (merge, fleet)))
        };
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
            act.running = false;
            match result {
                Ok((conn, shas)) => {
                    act.conn = Some(conn);
                    act.sha = Some(shas);
                    act.send(ctx);
                }
                Err(error) => act.failed(error, false, ctx),
            }
        }));
    }

    /// One `EVALSHA` of the merge script for one charge point's partial (arguments: see the
    /// header of the script). Written straight into the command, numbers through `scratch`:
    /// a charge point's call has ~250 arguments, and a `String` each made this the largest
    /// cost of a 19,000-charge-point fleet (issue 5).
    fn invocation(
        &mut self,
        sha: &str,
        cp: &ChargePointId,
        partial: &Partial,
        seq: u64,
        now_s: i64,
        scratch: &mut String,
    ) -> redis::Cmd {
        let id = cp.as_str();
        // The distinct buckets, in the order the entries (sorted by period, start) name them,
        // each with its expiry: set by the first entry that names it, 0 (leave) by the rest.
        let mut buckets: Vec<(Period, i64, String, i64)> = Vec::new();
        for (period, start, _) in partial.stats.keys() {
            if buckets
                .last()
                .is_some_and(|(p, s, _, _)| p == period && s == start)
            {
                continue;
            }
            let key = keys::aggregate_bucket(id, period.as_str(), start / 1000);
            let keep = match period {
                Period::Hour => self.settings.hourly_days,
                Period::Day => self.settings.daily_days,
            };
            let expire = if self.expiring.contains(&key) {
                0
            } else {
                if self.expiring.len() >= MAX_REMEMBERED_EXPIRIES {
                    self.expiring.clear();
                }
                self.expiring.insert(key.clone());
                period.expires_at(*start, keep)
            };
            buckets.push((*period, *start, key, expire));
        }
        let state_expire = if self.state_expiring.insert(cp.clone()) {
            // The baseline outlives the daily buckets it feeds; refreshed once per process.
            now_s + i64::from(self.settings.daily_days) * 86_400
        } else {
            0
        };
        if self.state_expiring.len() > MAX_REMEMBERED_EXPIRIES {
            self.state_expiring.clear();
        }

        let readings: usize = partial.readings.values().map(|r| 2 + 2 * r.len()).sum();
        let arg_count = 19 + buckets.len() + 11 * partial.stats.len() + readings;
        let mut cmd = redis::Cmd::with_capacity(arg_count, arg_count * 12);
        cmd.arg("EVALSHA").arg(sha);
        cmd.arg(1 + buckets.len()).arg(keys::aggregate_state(id));
        for (_, _, key, _) in &buckets {
            cmd.arg(key.as_str());
        }
        cmd.arg(format!("applied:{}", self.instance)).arg(seq);
        cmd.arg(keys::aggregate_bucket_prefix(id, Period::Hour.as_str()));
        cmd.arg(keys::aggregate_bucket_prefix(id, Period::Day.as_str()));
        cmd.arg(i64::from(self.settings.hourly_days) * 86_400);
        cmd.arg(i64::from(self.settings.daily_days) * 86_400);
        cmd.arg(now_s);
        arg_f64(&mut cmd, scratch, Some(MAX_PLAUSIBLE_POWER_W));
        cmd.arg(state_expire).arg(partial.stats.len());
        let mut previous: Option<(Period, i64)> = None;
        for ((period, start, series), rollup) in &partial.stats {
            let index = buckets
                .iter()
                .position(|(p, s, _, _)| p == period && s == start)
                .unwrap_or(0);
            // KEYS[1] is the state hash; the first entry of a bucket carries its expiry.
            let expire = if previous == Some((*period, *start)) {
                0
            } else {
                buckets[index].3
            };
            previous = Some((*period, *start));
            cmd.arg(index + 2).arg(expire).arg(series.field());
            cmd.arg(rollup.count);
            arg_f64(&mut cmd, scratch, Some(rollup.sum));
            arg_f64(&mut cmd, scratch, rollup.min);
            arg_f64(&mut cmd, scratch, rollup.max);
            arg_f64(&mut cmd, scratch, rollup.first.map(|f| f.1));
            arg_i64(&mut cmd, rollup.first.map(|f| f.0));
            arg_f64(&mut cmd, scratch, rollup.last.map(|l| l.1));
            arg_i64(&mut cmd, rollup.last.map(|l| l.0));
        }
        cmd.arg(partial.readings.len());
        for (series, readings) in &partial.readings {
            // Arrival order, not time order: a late reading then adds nothing whether or not
            // it shares a flush with newer ones, so the result does not depend on flush timing.
            cmd.arg(series.field()).arg(readings.len());
            for &(t, v) in readings {
                cmd.arg(t);
                arg_f64(&mut cmd, scratch, Some(v));
            }
        }
        match &self.settings.wal_mark_field {
            Some(field) if partial.wal_last > 0 => cmd.arg(field.as_str()).arg(partial.wal_last),
            _ => cmd.arg("").arg(0),
        };
        // Writes into buckets ending before now + this move the charge point's roll-up version,
        // which the API's read cache checks (`store::read_cache`).
        cmd.arg(crate::store::read_cache::CLOSED_MARGIN_MS);
        cmd
    }

    fn finished(&mut self, calls: u64, ctx: &mut Context<Self>) {
        let flight = self.in_flight.take();
        let seq = flight.as_ref().map_or(0, |f| f.seq);
        for (cp, partial) in flight.iter().flat_map(|f| &f.partials) {
            self.backlog.done(cp, partial.batches);
        }
        self.backoff = self.settings.retry_initial;
        self.stats.flushes_ok.fetch_add(1, Ordering::Relaxed);
        self.stats.script_calls.fetch_add(calls, Ordering::Relaxed);
        self.answer_waiters(seq);
        if !self.waiters.is_empty() {
            self.flush_wanted(ctx);
        }
    }

    fn failed(&mut self, error: String, noscript: bool, ctx: &mut Context<Self>) {
        self.stats.flushes_failed.fetch_add(1, Ordering::Relaxed);
        self.conn = None;
        self.expiring.clear();
        self.state_expiring.clear();
        if noscript {
            // Redis restarted or flushed its scripts: load it again and retry at once.
            log::info!("Roll-up script missing in Redis; loading it again.");
            self.sha = None;
            self.send(ctx);
            return;
        }
        log::warn!(
            "Roll-up flush failed ({error}); keeping it and {} pending entries, retrying in {:?}.",
            self.pending_entries,
            self.backoff
        );
        let delay = self.backoff;
        self.backoff = (self.backoff * 2).min(self.settings.retry_max);
        ctx.run_later(delay, |act, ctx| act.send(ctx));
    }

    /// Answers the waiters satisfied by flush `seq` (`u64::MAX`: everything is written).
    fn answer_waiters(&mut self, seq: u64) {
        let idle = self.in_flight.is_none() && self.pending.is_empty();
        let mut kept = Vec::new();
        for (needed, waiter) in self.waiters.drain(..) {
            if needed <= seq || idle {
                let _ = waiter.send(true);
            } else {
                kept.push((needed, waiter));
            }
        }
        self.waiters = kept;
    }
}

/// The fleet script call (`store/fleet_merge.lua`) copying the summaries that one pipeline of
/// merge scripts returned (`ids[i]` answered `replies[i]`) into the fleet buckets; `None` when
/// they returned none. `retention` is (hourly, daily) days, for the fleet buckets' expiry.
fn fleet_invocation(
    sha: &str,
    ids: &[ChargePointId],
    replies: Vec<redis::Value>,
    retention: (u32, u32),
) -> Option<redis::Cmd> {
    let mut update = fleet_rollup::FleetUpdate::default();
    for (cp, reply) in ids.iter().zip(replies) {
        // { applied, key, summary, key, summary, ... }; anything else adds nothing.
        let Ok(items) = redis::from_redis_value::<Vec<redis::Value>>(reply) else {
            continue;
        };
        let mut pairs = items.into_iter().skip(1);
        while let (Some(key), Some(summary)) = (pairs.next(), pairs.next()) {
            let (Ok(key), Ok(summary)) = (
                redis::from_redis_value::<String>(key),
                redis::from_redis_value::<String>(summary),
            ) else {
                continue;
            };
            if let Some((period, start_ms)) = fleet_rollup::bucket_of(&key) {
                update.add(cp.as_str(), period, start_ms, summary, retention);
            }
        }
    }
    update.command(Some(sha))
}

/// A number as the script reads it back exactly (shortest round-trip form, as `{:?}` writes
/// it); `None` as the empty string. Formatted in `scratch`, so no `String` per argument.
fn arg_f64(cmd: &mut redis::Cmd, scratch: &mut String, v: Option<f64>) {
    use std::fmt::Write;
    scratch.clear();
    if let Some(v) = v {
        let _ = write!(scratch, "{v:?}");
    }
    cmd.arg(scratch.as_str());
}

/// A time in unix ms; `None` as the empty string.
fn arg_i64(cmd: &mut redis::Cmd, v: Option<i64>) {
    match v {
        Some(v) => cmd.arg(v),
        None => cmd.arg(""),
    };
}

impl Actor for Aggregator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let check = DUE_CHECK.min(self.settings.flush_interval);
        ctx.run_interval(check, |act, ctx| act.flush_due(ctx));
        if self.in_flight.is_some() {
            self.send(ctx);
        }
    }
}

impl actix::Supervised for Aggregator {
    fn restarting(&mut self, _: &mut Self::Context) {
        // Partials are kept; a flush that was in flight is sent again with its sequence number,
        // which the script recognises if it had been applied.
        log::warn!(
            "Aggregator restarting with {} pending entries.",
            self.pending_entries
        );
        self.running = false;
        self.conn = None;
    }
}

impl Handler<SampleBatch> for Aggregator {
    type Result = ();

    fn handle(&mut self, batch: SampleBatch, _: &mut Self::Context) {
        if self.pending_entries >= MAX_PENDING_ENTRIES {
            let dropped = batch.samples.len() as u64;
            let total = self
                .stats
                .samples_dropped
                .fetch_add(dropped, Ordering::Relaxed)
                + dropped;
            log::error!(
                "{}: roll-ups dropped {dropped} samples ({total} so far): {} entries wait for Redis.",
                batch.charge_point,
                self.pending_entries
            );
            self.backlog.done(&batch.charge_point, 1);
            return;
        }
        let latest_plausible = chrono::Utc::now()
            + chrono::Duration::from_std(self.settings.max_clock_skew)
                .unwrap_or(chrono::Duration::MAX);
        let partial = self.pending.entry(batch.charge_point.clone()).or_default();
        if let Some(pin) = batch.wal {
            partial.wal_last = partial.wal_last.max(pin.lsn());
            if partial.wal.is_none() {
                partial.wal = Some(pin);
            }
        }
        let before = partial.entries();
        let mut counted = 0;
        for sample in batch.samples.iter() {
            let Some(value) = sample.number().filter(|v| v.is_finite()) else {
                continue;
            };
            if sample.timestamp > latest_plausible {
                continue;
            }
            let t = sample.timestamp.timestamp_millis();
            // One allocation per sample (the unit string): look the bucket up first and clone
            // the series only for a bucket this partial does not have yet.
            let mut series = SeriesKey::of(sample);
            for period in Period::ALL {
                let key = (period, period.start_of(t), series);
                match partial.stats.get_mut(&key) {
                    Some(rollup) => {
                        rollup.add(t, value);
                        series = key.2;
                    }
                    None => {
                        series = key.2.clone();
                        partial.stats.entry(key).or_default().add(t, value);
                    }
                }
            }
            if sample.measurand.is_energy_register() {
                partial.readings.entry(series).or_default().push((t, value));
            }
            counted += 1;
        }
        self.pending_entries += partial.entries() - before;
        if counted == 0 {
            // Nothing of it to write: no number, or only readings from a clock far ahead.
            self.backlog.done(&batch.charge_point, 1);
        } else {
            partial.batches += 1;
        }
        if partial.entries() == 0 {
            self.pending.remove(&batch.charge_point);
        } else if partial.since.is_none() {
            let now = Instant::now();
            partial.since = Some(now);
            self.due.push_back((now, batch.charge_point.clone()));
        }
        self.stats.samples.fetch_add(counted, Ordering::Relaxed);
    }
}

impl Handler<Flush> for Aggregator {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        if self.in_flight.is_none() && self.pending.is_empty() {
            let _ = tx.send(true);
        } else {
            let needed = if self.pending.is_empty() {
                self.next_seq - 1 // the one in flight
            } else {
                self.want_all = true;
                self.next_seq // the next flush takes everything pending
            };
            self.waiters.push((needed, tx));
            self.flush(ctx);
        }
        Box::pin(async move { rx.await.unwrap_or(false) })
    }
}

impl Handler<FlushChargePoint> for Aggregator {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: FlushChargePoint, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let cp = msg.0;
        // The in-flight partials are sorted by id (see `start`).
        let in_flight = self.in_flight.as_ref().and_then(|f| {
            f.partials
                .binary_search_by(|(c, _)| c.as_str().cmp(cp.as_str()))
                .ok()
                .map(|_| f.seq)
        });
        if self.pending.contains_key(&cp) {
            // The next flush takes this charge point's partials (and with them any older ones
            // of it in flight now, since flushes are written one after the other).
            self.waiters.push((self.next_seq, tx));
            self.wanted.insert(cp);
            self.flush_wanted(ctx);
        } else if let Some(seq) = in_flight {
            self.waiters.push((seq, tx));
        } else {
            let _ = tx.send(true);
        }
        Box::pin(async move { rx.await.unwrap_or(false) })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::aggregates::{register_energy, Period};

    const H: i64 = 3_600_000;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn a_session_spanning_two_hours_is_split_linearly() {
        // 1000 Wh at 10:40, 4000 Wh at 11:20: 3000 Wh over 40 minutes, 20 in each hour.
        let t0 = 10 * H + 40 * 60_000;
        let t1 = 11 * H + 20 * 60_000;
        let (parts, base) = register_energy(Period::Hour, None, &[(t0, 1000.0), (t1, 4000.0)]);
        assert_eq!(base, Some((t1, 4000.0)));
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, 10 * H);
        assert!(close(parts[0].1, 1500.0), "{parts:?}");
        assert!(close(parts[1].1, 1500.0), "{parts:?}");
        // Daily: both in the same day.
        let (days, _) = register_energy(Period::Day, None, &[(t0, 1000.0), (t1, 4000.0)]);
        assert_eq!(days, vec![(0, 3000.0)]);
    }

    #[test]
    fn a_gap_over_several_hours_spreads_over_every_hour() {
        let (parts, _) = register_energy(Period::Hour, Some((0, 0.0)), &[(3 * H, 300.0)]);
        assert_eq!(parts.len(), 3);
        for (i, (start, e)) in parts.iter().enumerate() {
            assert_eq!(*start, i as i64 * H);
            assert!(close(*e, 100.0));
        }
    }

    #[test]
    fn a_reset_contributes_nothing_and_becomes_the_baseline() {
        let readings = [
            (0, 5000.0),
            (H / 2, 5200.0),
            (H / 2 + 60_000, 10.0),
            (H, 60.0),
        ];
        let (parts, base) = register_energy(Period::Hour, None, &readings);
        let total: f64 = parts.iter().map(|p| p.1).sum();
        assert!(close(total, 200.0 + 50.0), "{parts:?}");
        assert_eq!(base, Some((H, 60.0)));
    }

    #[test]
    fn an_implausible_jump_contributes_nothing() {
        // A replaced meter starting 100 MWh higher, one minute later: 6 GW average.
        let (parts, base) =
            register_energy(Period::Hour, Some((0, 1000.0)), &[(60_000, 100_001_000.0)]);
        assert!(parts.is_empty());
        assert_eq!(base, Some((60_000, 100_001_000.0)));
        // 16.6 kWh in one minute is exactly 1 MW: still plausible.
        let (parts, _) = register_energy(Period::Hour, Some((0, 0.0)), &[(60_000, 16_666.0)]);
        assert_eq!(parts.len(), 1);
    }

    #[test]
    fn late_and_repeated_readings_do_not_count_twice() {
        let base = Some((2 * H, 2000.0));
        // Older than the baseline, equal to it, then a newer one.
        let readings = [(H, 1000.0), (2 * H, 2000.0), (2 * H + H / 2, 2500.0)];
        let (parts, base) = register_energy(Period::Hour, base, &readings);
        assert_eq!(parts, vec![(2 * H, 500.0)]);
        assert_eq!(base, Some((2 * H + H / 2, 2500.0)));
        // The same readings again add nothing.
        let (again, _) = register_energy(Period::Hour, base, &readings);
        assert!(again.is_empty());
    }

    #[test]
    fn readings_across_midnight_split_between_days() {
        let day = 86_400_000;
        let (parts, _) =
            register_energy(Period::Day, Some((day - H, 0.0)), &[(day + 3 * H, 400.0)]);
        assert_eq!(parts.len(), 2);
        assert!(close(parts[0].1, 100.0) && close(parts[1].1, 300.0));
    }
}
