//! Large reads answered from memory while Redis vouches that nothing they read has changed.
//!
//! With the read cache ([`crate::store::read_cache`]) a warm 24 h or 30-day read decodes
//! nothing, but it still made one Redis round trip to check that its cached hours and buckets
//! were current. With 19,000 charge points sending on two shared cores, that round trip (two
//! thread wake-ups and a turn in Redis behind the writer's pipelines) was the read's tail
//! (docs/performance.md, issue 13, fifth round).
//!
//! Redis's client tracking (`CLIENT TRACKING on` over RESP3) remembers each key a connection
//! read and pushes an `invalidate` message on that connection when any client changes one of
//! them: this instance's writer, another instance on the same Redis, an expiry, a `FLUSHDB`.
//! A read made over a tracked connection ([`TrackedLink`]) is kept here with its result (a
//! "mark"), and the same read of the same charge point is answered from it, without a round
//! trip, until one of these forgets it:
//!
//! - Redis pushes an invalidation of any key of the charge point. The push is handled in the
//!   connection's reader, before any reply that follows it on the connection.
//! - This process counts one more batch of the charge point on its way to Redis
//!   ([`crate::backlog::Backlog::add`] calls [`TrackedReads::forget`]): a reading answered
//!   here is in the next read at once, not when Redis's push comes back after the write.
//! - The tracked connection is lost, or a read on it fails: the pushes it would have carried
//!   are gone, so every mark goes ([`TrackedReads::forget_all`]).
//! - The connection does not answer its once-a-second `PING` within a second: one that died
//!   without a word (a network partition, a stalled Redis) has its marks forgotten within two
//!   seconds. Replies come in order, so a `PONG` also shows every earlier push has arrived.
//! - `max_age` (`reads.tracked_secs`) has passed since Redis confirmed it.
//!
//! **Ordering.** A read opens its mark ([`TrackedReads::open`]) before it checks the backlog
//! and sends its pipeline, and confirms it after the reply only if nothing forgot the mark in
//! between and the backlog was clear after the opening. A batch counted before the opening
//! is then in Redis before the pipeline is sent; one counted after it forgets the mark. So a
//! confirmed mark never misses a reading this process answered before the read.
//!
//! One Redis server only (`redis.mode = "standalone"`): on a cluster the pushes come from
//! every node, over connections of their own; a cluster's reads keep asking Redis.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{
    self, AsyncConnectionConfig, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind,
    RedisError, Value,
};

use crate::store::aggregates::Period;
use crate::store::hour_samples::HourSamples;
use crate::store::read_cache::{BucketEntry, SeriesSelection};
use crate::FastHashMap;

/// The tracked connection's type, for callers that run a read's pipeline on it.
pub type TrackedConnection = MultiplexedConnection;

/// Which read of a charge point a mark holds the result of: reads with equal keys read the
/// same Redis keys and get the same result while nothing changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKey {
    /// The hour chunks `first_hour..=last_hour` (hour indexes, unix seconds / 3600, as in
    /// `keys::raw_chunk`) of one series selection, rendered for the API or not.
    Hours {
        /// Series of the read.
        selection: SeriesSelection,
        /// The first hour.
        first_hour: i64,
        /// The last hour.
        last_hour: i64,
        /// Whether the hours carry their JSON rendering.
        rendered: bool,
    },
    /// The roll-up buckets of `period` starting `first_start..=last_start` (unix ms): what a
    /// read of any range with those buckets reads, so a range ending "now" is the same read
    /// until the next bucket starts.
    Buckets {
        /// Hour or day.
        period: Period,
        /// Start of the first bucket.
        first_start: i64,
        /// Start of the last bucket.
        last_start: i64,
    },
}

/// The result a mark keeps: what the read's Redis step returned.
#[derive(Debug, Clone)]
pub enum Held {
    /// Hours of a [`ReadKey::Hours`] read, oldest first.
    Hours(Arc<[Arc<HourSamples>]>),
    /// Buckets of a [`ReadKey::Buckets`] read.
    Buckets(Arc<[Arc<BucketEntry>]>),
}

impl Held {
    /// Heap the result keeps alive, counted against the marks' bound (shared with the read
    /// cache's entries while it holds them too, so this over-counts).
    fn bytes(&self) -> usize {
        match self {
            Held::Hours(hours) => hours.iter().map(|h| 96 + h.heap_bytes()).sum(),
            Held::Buckets(buckets) => buckets.iter().map(|b| 96 + b.heap_bytes()).sum(),
        }
    }

    /// How many cached hours or buckets the result is made of.
    pub fn entries(&self) -> usize {
        match self {
            Held::Hours(hours) => hours.len(),
            Held::Buckets(buckets) => buckets.len(),
        }
    }
}

/// A read answered from a mark: its Redis step's result, and the string key read beside it
/// (the owner record), as the read that confirmed the mark got them.
#[derive(Debug, Clone)]
pub struct Confirmed {
    /// The hours or buckets.
    pub held: Held,
    /// The value of the key read beside (see `hours_matching_cached_beside`).
    pub beside: Option<Option<String>>,
}

/// A mark opened by a read still waiting for Redis; confirmed with [`TrackedReads::confirm`].
#[derive(Debug)]
pub struct Opened {
    charge_point: Arc<str>,
    token: u64,
}

enum State {
    Open,
    Confirmed {
        at: Instant,
        result: Confirmed,
        bytes: usize,
    },
}

struct Mark {
    key: ReadKey,
    token: u64,
    generation: u64,
    state: State,
}

/// Reads kept per charge point at most (the oldest goes): ranges that move with the clock
/// make a new read each bucket or hour.
const MARKS_PER_CHARGE_POINT: usize = 8;

#[derive(Default)]
struct Marks {
    by_charge_point: FastHashMap<Arc<str>, Vec<Mark>>,
    bytes: usize,
    next_token: u64,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct TrackedStats {
    /// Reads answered from a mark, without Redis.
    pub answered: AtomicU64,
    /// Marks confirmed by a read over a tracked connection.
    pub confirmed: AtomicU64,
    /// Keys Redis said changed (each push may name several).
    pub invalidated_keys: AtomicU64,
    /// Tracked connections lost or failed (each forgets every mark).
    pub lost_connections: AtomicU64,
}

/// The marks of every admin API worker, and what forgets them (see the module doc).
pub struct TrackedReads {
    /// Where the tracked connections go (RESP3); `None`: reads always ask Redis.
    target: Option<redis::ConnectionInfo>,
    max_age: Duration,
    budget_bytes: usize,
    connect_timeout: Duration,
    response_timeout: Duration,
    marks: Mutex<Marks>,
    /// Charge points with marks, read without the lock by [`TrackedReads::forget`], which
    /// every batch of the fleet calls.
    marked: AtomicUsize,
    /// Moves when a tracked connection is lost: marks of an older generation count for
    /// nothing.
    generation: AtomicU64,
    stats: Arc<TrackedStats>,
}

impl std::fmt::Debug for TrackedReads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackedReads")
            .field("enabled", &self.enabled())
            .field("marked", &self.marked.load(Ordering::Relaxed))
            .finish()
    }
}

/// How the tracked connections are made and how long and how much the marks may keep.
#[derive(Debug, Clone)]
pub struct TrackedSettings {
    /// The standalone Redis URL; `None` (a cluster) turns the marks off.
    pub url: Option<String>,
    /// How long a mark answers after Redis confirmed it; zero turns the marks off.
    pub max_age: Duration,
    /// Heap the marks may keep alive.
    pub budget_bytes: usize,
    /// As the pool's.
    pub connect_timeout: Duration,
    /// As the pool's.
    pub response_timeout: Duration,
}

impl TrackedReads {
    /// Marks per `settings`; a URL that does not parse turns them off (the pool built from the
    /// same URL has refused it already).
    pub fn new(settings: &TrackedSettings) -> Self {
        let target = settings
            .url
            .as_deref()
            .filter(|_| !settings.max_age.is_zero() && settings.budget_bytes > 0)
            .and_then(|url| url.into_connection_info().ok())
            .map(|info| {
                let resp3 = info
                    .redis_settings()
                    .clone()
                    .set_protocol(ProtocolVersion::RESP3);
                info.set_redis_settings(resp3)
            });
        TrackedReads {
            target,
            max_age: settings.max_age,
            budget_bytes: settings.budget_bytes,
            connect_timeout: settings.connect_timeout,
            response_timeout: settings.response_timeout,
            marks: Mutex::default(),
            marked: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            stats: Arc::default(),
        }
    }

    /// No marks: every read asks Redis (tests, benches, clusters).
    pub fn disabled() -> Self {
        TrackedReads::new(&TrackedSettings {
            url: None,
            max_age: Duration::ZERO,
            budget_bytes: 0,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
        })
    }

    /// Whether reads may be answered from marks.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The counters, for `/metrics`.
    pub fn stats(&self) -> Arc<TrackedStats> {
        self.stats.clone()
    }

    /// The result of the read `key` of `charge_point` if Redis confirmed it within `max_age`
    /// and nothing forgot it since.
    pub fn confirmed(&self, charge_point: &str, key: &ReadKey) -> Option<Confirmed> {
        if self.marked.load(Ordering::Acquire) == 0 {
            return None;
        }
        let generation = self.generation.load(Ordering::Acquire);
        let marks = self.lock();
        let mark = marks
            .by_charge_point
            .get(charge_point)?
            .iter()
            .find(|m| m.key == *key && m.generation == generation)?;
        match &mark.state {
            State::Confirmed { at, result, .. } if at.elapsed() < self.max_age => {
                self.stats.answered.fetch_add(1, Ordering::Relaxed);
                Some(result.clone())
            }
            _ => None,
        }
    }

    /// Opens a mark for the read `key` of `charge_point`, before the read checks what is on
    /// its way and asks Redis; `None` when marks are off.
    pub fn open(&self, charge_point: &str, key: ReadKey) -> Option<Opened> {
        self.enabled().then_some(())?;
        let generation = self.generation.load(Ordering::Acquire);
        let mut marks = self.lock();
        marks.next_token += 1;
        let token = marks.next_token;
        let charge_point: Arc<str> = match marks.by_charge_point.get_key_value(charge_point) {
            Some((cp, _)) => cp.clone(),
            None => Arc::from(charge_point),
        };
        let list = marks
            .by_charge_point
            .entry(charge_point.clone())
            .or_default();
        let mut freed = 0;
        list.retain(|m| {
            let keep = m.key != key;
            if !keep {
                freed += m.bytes();
            }
            keep
        });
        if list.len() >= MARKS_PER_CHARGE_POINT {
            freed += list.remove(0).bytes();
        }
        list.push(Mark {
            key,
            token,
            generation,
            state: State::Open,
        });
        marks.bytes -= freed;
        self.marked
            .store(marks.by_charge_point.len(), Ordering::Release);
        Some(Opened {
            charge_point,
            token,
        })
    }

    /// Keeps `result` for the mark `opened` if nothing forgot it since it was opened; the
    /// caller confirms only after a reply of a tracked connection, and only if nothing was on
    /// its way to Redis for the charge point after the mark was opened.
    pub fn confirm(&self, opened: Opened, result: Confirmed) {
        let bytes = result.held.bytes();
        if bytes > self.budget_bytes {
            self.forget_mark(&opened);
            return;
        }
        let generation = self.generation.load(Ordering::Acquire);
        let mut marks = self.lock();
        let Some(mark) = marks
            .by_charge_point
            .get_mut(&*opened.charge_point)
            .and_then(|list| list.iter_mut().find(|m| m.token == opened.token))
        else {
            return;
        };
        if mark.generation != generation || !matches!(mark.state, State::Open) {
            return;
        }
        mark.state = State::Confirmed {
            at: Instant::now(),
            result,
            bytes,
        };
        marks.bytes += bytes;
        self.stats.confirmed.fetch_add(1, Ordering::Relaxed);
        self.within_budget(&mut marks, &opened);
    }

    /// Drops the mark `opened` (its read failed, or could not be confirmed).
    pub fn forget_mark(&self, opened: &Opened) {
        let mut marks = self.lock();
        let Some(list) = marks.by_charge_point.get_mut(&*opened.charge_point) else {
            return;
        };
        let mut freed = 0;
        list.retain(|m| {
            let keep = m.token != opened.token;
            if !keep {
                freed += m.bytes();
            }
            keep
        });
        if list.is_empty() {
            marks.by_charge_point.remove(&*opened.charge_point);
        }
        marks.bytes -= freed;
        self.marked
            .store(marks.by_charge_point.len(), Ordering::Release);
    }

    /// Forgets every mark of `charge_point`: something of it changed in Redis, or is on its
    /// way there. Cheap when nothing is marked (one atomic load), as it is called for every
    /// batch of the fleet.
    pub fn forget(&self, charge_point: &str) {
        if self.marked.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut marks = self.lock();
        if let Some(list) = marks.by_charge_point.remove(charge_point) {
            let freed: usize = list.iter().map(Mark::bytes).sum();
            marks.bytes -= freed;
            self.marked
                .store(marks.by_charge_point.len(), Ordering::Release);
        }
    }

    /// Forgets every mark: a tracked connection was lost, or Redis flushed its database.
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut marks = self.lock();
        marks.by_charge_point.clear();
        marks.by_charge_point.shrink_to_fit();
        marks.bytes = 0;
        self.marked.store(0, Ordering::Release);
    }

    /// The connection made under `generation` is lost: every mark goes (once, however many
    /// of its watchers notice).
    fn lost(&self, generation: u64) {
        if self.generation.load(Ordering::Acquire) == generation {
            self.stats.lost_connections.fetch_add(1, Ordering::Relaxed);
            self.forget_all();
        }
    }

    /// Handles one push of the tracked connection made under `generation` (called in its
    /// reader, in order with its replies).
    fn on_push(&self, push: PushInfo, generation: u64) {
        match push.kind {
            PushKind::Invalidate => match push.data.first() {
                Some(Value::Array(keys)) => {
                    self.stats
                        .invalidated_keys
                        .fetch_add(keys.len() as u64, Ordering::Relaxed);
                    for key in keys {
                        match charge_point_of(key) {
                            Some(cp) => self.forget(cp),
                            None => self.forget_all(),
                        }
                    }
                }
                // Nil: the database was flushed.
                _ => self.forget_all(),
            },
            // Only a loss of the connection in use counts: a replaced one's ends nothing.
            PushKind::Disconnection => self.lost(generation),
            _ => {}
        }
    }

    /// Drops expired marks, then the oldest, until the marks fit their budget; never the
    /// mark just confirmed (`keep`).
    fn within_budget(&self, marks: &mut Marks, just_confirmed: &Opened) {
        if marks.bytes <= self.budget_bytes {
            return;
        }
        let max_age = self.max_age;
        let mut freed = 0;
        for list in marks.by_charge_point.values_mut() {
            list.retain(|m| match &m.state {
                State::Confirmed { at, bytes, .. } if at.elapsed() >= max_age => {
                    freed += bytes;
                    false
                }
                _ => true,
            });
        }
        marks.bytes -= freed;
        while marks.bytes > self.budget_bytes {
            let oldest = marks
                .by_charge_point
                .iter()
                .flat_map(|(cp, list)| list.iter().map(move |m| (cp, m)))
                .filter(|(_, m)| m.token != just_confirmed.token)
                .filter_map(|(cp, m)| match &m.state {
                    State::Confirmed { at, .. } => Some((*at, cp.clone(), m.token)),
                    State::Open => None,
                })
                .min_by_key(|(at, _, _)| *at);
            let Some((_, cp, token)) = oldest else { break };
            if let Some(list) = marks.by_charge_point.get_mut(&cp) {
                if let Some(i) = list.iter().position(|m| m.token == token) {
                    marks.bytes -= list.remove(i).bytes();
                }
            }
        }
        marks.by_charge_point.retain(|_, list| !list.is_empty());
        self.marked
            .store(marks.by_charge_point.len(), Ordering::Release);
    }

    fn lock(&self) -> MutexGuard<'_, Marks> {
        // A panic while holding the lock leaves marks that the next forget clears; reads
        // never serve one that nothing confirmed.
        self.marks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Mark {
    fn bytes(&self) -> usize {
        match &self.state {
            State::Confirmed { bytes, .. } => *bytes,
            State::Open => 0,
        }
    }
}

/// The charge point of a key `ocpp:{CP}:...` as a push names it.
fn charge_point_of(key: &Value) -> Option<&str> {
    let Value::BulkString(bytes) = key else {
        return None;
    };
    let text = std::str::from_utf8(bytes).ok()?;
    let rest = text.strip_prefix("ocpp:{")?;
    rest.split_once('}').map(|(cp, _)| cp)
}

/// One admin API worker's tracked connection, made lazily on the worker's thread (which then
/// drives its I/O, as with the worker's pools) and made again after a failure.
pub struct TrackedLink {
    reads: Arc<TrackedReads>,
    connection: tokio::sync::Mutex<Option<(MultiplexedConnection, u64)>>,
    /// When making the connection last failed: reads go through the pool for
    /// [`RETRY_AFTER`] rather than paying a failed connect each (a Redis without RESP3 or
    /// client tracking never gets one).
    failed_at: Mutex<Option<Instant>>,
}

/// How long reads go through the pool after the tracked connection could not be made.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// How often each tracked connection is pinged. Redis answers a connection in order, so a
/// `PONG` shows that every invalidation of a write before the `PING` has arrived: a
/// connection that died without a word (a network partition, a stalled Redis) forgets every
/// mark within this plus [`PING_TIMEOUT`], however long `reads.tracked_secs` is.
const PING_EVERY: Duration = Duration::from_secs(1);

/// How long a ping may take before the connection counts as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

impl std::fmt::Debug for TrackedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackedLink")
            .field("reads", &self.reads)
            .finish()
    }
}

impl TrackedLink {
    /// A link for one worker; no connection yet.
    pub fn new(reads: Arc<TrackedReads>) -> Self {
        TrackedLink {
            reads,
            connection: tokio::sync::Mutex::new(None),
            failed_at: Mutex::new(None),
        }
    }

    /// The marks this link confirms.
    pub fn reads(&self) -> &Arc<TrackedReads> {
        &self.reads
    }

    /// The tracked connection (a clone of the multiplexed handle), made if there is none or
    /// the last was lost; `None` when marks are off or making it failed less than
    /// [`RETRY_AFTER`] ago.
    pub async fn connection(&self) -> Option<Result<MultiplexedConnection, RedisError>> {
        let target = self.reads.target.as_ref()?;
        let generation = self.reads.generation.load(Ordering::Acquire);
        let mut slot = self.connection.lock().await;
        if let Some((conn, made_in)) = slot.as_ref() {
            if *made_in == generation {
                return Some(Ok(conn.clone()));
            }
        }
        *slot = None;
        if self.failed_recently() {
            return None;
        }
        let reads = Arc::clone(&self.reads);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.reads.connect_timeout))
            .set_response_timeout(Some(self.reads.response_timeout))
            .set_push_sender(move |push: PushInfo| {
                reads.on_push(push, generation);
                Ok::<(), std::convert::Infallible>(())
            });
        let made = async {
            let client = redis::Client::open(target.clone())?;
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            redis::cmd("CLIENT")
                .arg("TRACKING")
                .arg("on")
                .exec_async(&mut conn)
                .await?;
            Ok::<_, RedisError>(conn)
        }
        .await;
        match &made {
            // Made under the generation read before connecting: a loss while connecting moved
            // it, and the next read makes another.
            Ok(conn) => {
                *slot = Some((conn.clone(), generation));
                tokio::spawn(keep_alive(
                    Arc::clone(&self.reads),
                    conn.clone(),
                    generation,
                ));
            }
            Err(error) => {
                let mut failed_at = self
                    .failed_at
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // Said once at warn (a Redis without RESP3, or an ACL user without `CLIENT`,
                // fails every time), then at debug.
                if failed_at.is_none() {
                    log::warn!("Large reads ask Redis every time: no tracked connection ({error}); tried again every {} s.", RETRY_AFTER.as_secs());
                } else {
                    log::debug!("Still no tracked connection for large reads ({error}).");
                }
                *failed_at = Some(Instant::now());
            }
        }
        Some(made)
    }

    fn failed_recently(&self) -> bool {
        self.failed_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < RETRY_AFTER)
    }

    /// A read over the tracked connection failed: it may have missed pushes, so it is made
    /// again and every mark goes.
    pub async fn failed(&self) {
        self.reads
            .stats
            .lost_connections
            .fetch_add(1, Ordering::Relaxed);
        self.reads.forget_all();
        *self.connection.lock().await = None;
    }
}

/// Pings the tracked connection made under `generation` until a ping fails or times out (then
/// every mark goes, and the next read makes another connection) or another connection
/// replaced it.
async fn keep_alive(reads: Arc<TrackedReads>, mut conn: MultiplexedConnection, generation: u64) {
    loop {
        tokio::time::sleep(PING_EVERY).await;
        if reads.generation.load(Ordering::Acquire) != generation {
            return;
        }
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<()>(&mut conn);
        match tokio::time::timeout(PING_TIMEOUT, ping).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                log::debug!("The tracked Redis connection for reads failed a ping ({error}).");
                return reads.lost(generation);
            }
            Err(_) => {
                log::debug!(
                    "The tracked Redis connection for reads did not answer a ping in {} ms.",
                    PING_TIMEOUT.as_millis()
                );
                return reads.lost(generation);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(budget: usize, max_age: Duration) -> TrackedReads {
        TrackedReads::new(&TrackedSettings {
            url: Some("redis://127.0.0.1:1".into()),
            max_age,
            budget_bytes: budget,
            connect_timeout: Duration::from_secs(1),
            response_timeout: Duration::from_secs(1),
        })
    }

    fn key(first_hour: i64) -> ReadKey {
        ReadKey::Hours {
            selection: SeriesSelection {
                measurand: None,
                connector_id: None,
                phase: None,
            },
            first_hour,
            last_hour: first_hour,
            rendered: false,
        }
    }

    fn sample(ms: i64) -> crate::sample::Sample {
        use crate::sample::{Location, Measurand, Phase, ReadingContext, SampleValue, Unit};
        crate::sample::Sample {
            timestamp: chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default(),
            connector_id: 1,
            transaction_id: None,
            measurand: Measurand::Voltage,
            phase: Some(Phase::L1N),
            location: Location::Outlet,
            context: ReadingContext::SamplePeriodic,
            unit: Unit::V,
            value: SampleValue::Number(230.0),
        }
    }

    fn result(samples: usize) -> Confirmed {
        let hour = HourSamples::from_stored((0..samples).map(|i| sample(i as i64)).collect(), None);
        Confirmed {
            held: Held::Hours(Arc::from(vec![Arc::new(hour)])),
            beside: Some(Some("owner".into())),
        }
    }

    #[test]
    fn a_confirmed_read_answers_until_its_charge_point_is_forgotten() {
        let reads = reads(1 << 20, Duration::from_secs(60));
        assert!(reads.confirmed("CP1", &key(0)).is_none());
        let opened = reads.open("CP1", key(0)).unwrap();
        assert!(
            reads.confirmed("CP1", &key(0)).is_none(),
            "an open mark answers nothing"
        );
        reads.confirm(opened, result(3));
        let answer = reads.confirmed("CP1", &key(0)).unwrap();
        assert_eq!(answer.held.entries(), 1);
        assert_eq!(answer.beside, Some(Some("owner".into())));
        assert!(
            reads.confirmed("CP1", &key(3_600_000)).is_none(),
            "another range is another read"
        );
        assert!(reads.confirmed("CP2", &key(0)).is_none());
        reads.forget("CP2");
        assert!(reads.confirmed("CP1", &key(0)).is_some());
        reads.forget("CP1");
        assert!(reads.confirmed("CP1", &key(0)).is_none());
        assert_eq!(reads.lock().bytes, 0);
    }

    #[test]
    fn a_mark_forgotten_while_open_is_not_confirmed() {
        let reads = reads(1 << 20, Duration::from_secs(60));
        let opened = reads.open("CP1", key(0)).unwrap();
        reads.forget("CP1");
        reads.confirm(opened, result(3));
        assert!(
            reads.confirmed("CP1", &key(0)).is_none(),
            "a batch counted while the read was at Redis may be missing from its reply"
        );

        let opened = reads.open("CP1", key(0)).unwrap();
        reads.forget_all();
        reads.confirm(opened, result(3));
        assert!(
            reads.confirmed("CP1", &key(0)).is_none(),
            "a lost connection voids marks opened before it"
        );
    }

    #[test]
    fn pushes_forget_the_charge_points_of_their_keys_and_a_flush_forgets_all() {
        let reads = reads(1 << 20, Duration::from_secs(60));
        for cp in ["CP1", "CP2", "CP3"] {
            let opened = reads.open(cp, key(0)).unwrap();
            reads.confirm(opened, result(1));
        }
        reads.on_push(
            PushInfo {
                kind: PushKind::Invalidate,
                data: vec![Value::Array(vec![Value::BulkString(
                    b"ocpp:{CP1}:raw:0".to_vec(),
                )])],
            },
            0,
        );
        assert!(reads.confirmed("CP1", &key(0)).is_none());
        assert!(reads.confirmed("CP2", &key(0)).is_some());
        reads.on_push(
            PushInfo {
                kind: PushKind::Invalidate,
                data: vec![Value::Nil],
            },
            0,
        );
        assert!(reads.confirmed("CP2", &key(0)).is_none());
        let opened = reads.open("CP3", key(0)).unwrap();
        reads.confirm(opened, result(1));
        reads.on_push(
            PushInfo {
                kind: PushKind::Disconnection,
                data: vec![],
            },
            1,
        );
        assert!(reads.confirmed("CP3", &key(0)).is_none());
        let opened = reads.open("CP3", key(0)).unwrap();
        reads.confirm(opened, result(1));
        reads.on_push(
            PushInfo {
                kind: PushKind::Disconnection,
                data: vec![],
            },
            1,
        );
        assert!(
            reads.confirmed("CP3", &key(0)).is_some(),
            "the end of a connection already replaced forgets nothing"
        );
    }

    #[test]
    fn marks_age_out_and_stay_within_their_budget() {
        let reads_ = reads(1 << 20, Duration::from_millis(30));
        let opened = reads_.open("CP1", key(0)).unwrap();
        reads_.confirm(opened, result(1));
        assert!(reads_.confirmed("CP1", &key(0)).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(reads_.confirmed("CP1", &key(0)).is_none());

        let one = result(100).held.bytes();
        let reads = reads(one * 2 + one / 2, Duration::from_secs(60));
        for cp in ["CP1", "CP2", "CP3"] {
            let opened = reads.open(cp, key(0)).unwrap();
            reads.confirm(opened, result(100));
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(reads.lock().bytes <= one * 2 + one / 2);
        assert!(reads.confirmed("CP1", &key(0)).is_none(), "the oldest went");
        assert!(reads.confirmed("CP3", &key(0)).is_some());
        let too_big = reads.open("CP4", key(0)).unwrap();
        reads.confirm(too_big, result(1000));
        assert!(reads.confirmed("CP4", &key(0)).is_none());
        assert!(reads.confirmed("CP3", &key(0)).is_some());
    }

    #[test]
    fn a_charge_point_keeps_its_latest_reads_only() {
        let reads = reads(1 << 20, Duration::from_secs(60));
        for hour in 0..=MARKS_PER_CHARGE_POINT as i64 {
            let opened = reads.open("CP1", key(hour)).unwrap();
            reads.confirm(opened, result(1));
        }
        assert!(reads.confirmed("CP1", &key(0)).is_none(), "the oldest went");
        for hour in 1..=MARKS_PER_CHARGE_POINT as i64 {
            assert!(reads.confirmed("CP1", &key(hour)).is_some());
        }
        assert_eq!(
            reads.lock().bytes,
            MARKS_PER_CHARGE_POINT * result(1).held.bytes()
        );
    }

    #[test]
    fn marks_are_off_without_a_url_or_an_age() {
        assert!(TrackedReads::disabled().open("CP1", key(0)).is_none());
        assert!(reads(1 << 20, Duration::ZERO).open("CP1", key(0)).is_none());
        assert!(reads(1 << 20, Duration::from_secs(1)).enabled());
    }

    #[test]
    fn keys_name_their_charge_point() {
        let key = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        assert_eq!(charge_point_of(&key("ocpp:{CP-1}:raw:5")), Some("CP-1"));
        assert_eq!(charge_point_of(&key("ocpp:{CP-1}:agg")), Some("CP-1"));
        assert_eq!(charge_point_of(&key("other")), None);
        assert_eq!(charge_point_of(&Value::Nil), None);
    }
}
