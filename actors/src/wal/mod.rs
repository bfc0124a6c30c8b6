//! The write-ahead log: what makes "answered" mean "durable".
//!
//! Every MeterValues, StartTransaction and StopTransaction is appended here by its charge point
//! actor, and its CALLRESULT waits until the record is on disk ([`Durable`]). Many sessions
//! share one `fsync` (group commit): the [`committer`] thread collects what arrives within
//! `wal.group_commit_ms` of the first record and writes and syncs it at once.
//!
//! # When a record may go
//!
//! A record is needed until Redis holds what it carries, on two paths: the raw chunks (through
//! the station buffer and the writer) and the roll-ups (through the aggregator). Each path
//! holds a [`WalPin`] on the record's sequence number while the data is only in memory: the
//! buffer keeps the pin of the first sample of its batch, the writer keeps it until the
//! pipeline is confirmed, the aggregator until the flush that carries it is applied. Pins are
//! dropped (released) automatically with the batch, so a forgotten pin is impossible and a
//! batch dropped on purpose releases its record with it. The lowest pinned number per path is
//! that path's watermark; a sealed segment whose records are all below both watermarks is
//! deleted, and the watermarks are written to `checkpoint` so a replay starts there.
//!
//! # Replay
//!
//! [`Wal::open`] reads every segment (cutting off a torn tail), and hands back the records at or
//! above the checkpoint, each pinned for the paths that still need it. The server feeds them to
//! the writer and the aggregator before its listeners open. Replay is idempotent: a sample
//! stored twice is read once (reads de-duplicate by reading identity) and register energy is
//! computed against the baseline in Redis, so a reading already counted adds nothing.
//!
//! Layout: [`record`] (the bytes of one record), [`segment`] (files, scan, checkpoint),
//! [`committer`] (the thread that writes, syncs, rotates and retires segments), [`replay`]
//! (trimming a replay to what Redis lacks).

pub mod committer;
pub mod record;
pub mod replay;
pub mod segment;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use crate::exchange::StoreOp;
use crate::id::ChargePointId;
use crate::sample::Sample;

pub use record::Record;

/// When the log is forced to disk (`wal.fsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// One `fdatasync` per group commit: survives a power cut, at a shared cost.
    Batch,
    /// One write and `fdatasync` per record: the same promise without grouping, for disks where
    /// latency matters less than the simplest possible behaviour.
    Always,
    /// Written to the OS and never forced: survives a process crash, not a power cut.
    Never,
}

/// `[wal]` settings, resolved.
#[derive(Debug, Clone)]
pub struct WalSettings {
    /// Directory of the segments (created when missing, locked while the server runs).
    pub dir: PathBuf,
    /// When to force the log to disk.
    pub fsync: FsyncPolicy,
    /// How long a group commit waits after its first record for more to join it.
    pub group_commit: Duration,
    /// Size past which a segment is sealed and a new one opened.
    pub segment_bytes: u64,
    /// Disk the log may occupy (0: unlimited); past it appends are refused as on a full disk.
    pub max_disk_bytes: u64,
}

/// Why a record was not made durable; the charge point gets a CALLERROR `InternalError` and
/// keeps (and later resends) its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalError {
    /// `wal.max_disk_bytes` is reached: nothing is appended until segments are retired.
    #[error("the write-ahead log is full ({used} of wal.max_disk_bytes = {limit} bytes)")]
    Full {
        /// Bytes on disk and waiting.
        used: u64,
        /// The limit.
        limit: u64,
    },
    /// Writing or syncing failed (a full disk, an I/O error).
    #[error("the write-ahead log could not be written: {0}")]
    Io(String),
    /// The log is closed (the server is stopping).
    #[error("the write-ahead log is closed")]
    Closed,
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory could not be created, read or locked.
    #[error("wal.dir {dir}: {source}")]
    Io {
        /// The directory.
        dir: String,
        /// The OS error.
        source: io::Error,
    },
    /// Another process holds the directory's lock.
    #[error("wal.dir {0} is in use by another ocpp-meter process")]
    Locked(String),
}

/// Which path to Redis a pin holds a record for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinPath {
    /// Raw chunks and record changes (station buffer, writer).
    Raw,
    /// Hourly and daily roll-ups (aggregator).
    Rollup,
}

/// Counters for `/metrics`, `/ready` and the tests; atomics so nobody waits on the log.
#[derive(Debug, Default)]
pub struct WalStats {
    /// Records appended.
    pub records: AtomicU64,
    /// Bytes written to segments.
    pub bytes_written: AtomicU64,
    /// Group commits written.
    pub commits: AtomicU64,
    /// `fdatasync` calls.
    pub fsyncs: AtomicU64,
    /// Microseconds spent writing and syncing, summed (with `commits`: the mean commit time).
    pub commit_micros: AtomicU64,
    /// Appends refused (log full) or whose commit failed (I/O error).
    pub appends_failed: AtomicU64,
    /// Segment files on disk.
    pub segments: AtomicU64,
    /// Bytes of segment files on disk.
    pub disk_bytes: AtomicU64,
    /// Segments deleted because Redis held everything in them.
    pub segments_retired: AtomicU64,
    /// Records replayed at start.
    pub records_replayed: AtomicU64,
    /// Torn or corrupt segment tails cut off at start.
    pub tails_truncated: AtomicU64,
    /// Lowest record still needed on the raw path (or the next number, when none is).
    pub raw_watermark: AtomicU64,
    /// Lowest record still needed on the roll-up path.
    pub rollup_watermark: AtomicU64,
}

/// What appends and the committer share, under one lock: sequence numbers are handed out and
/// pinned in the same critical section, so no watermark can pass a record in between.
#[derive(Debug)]
struct State {
    /// Number of the next record.
    next_lsn: u64,
    /// Records appended and not yet taken by the committer.
    pending: Vec<u8>,
    /// Per record in `pending`: where it ends there, and who waits for it.
    waiters: Vec<(usize, oneshot::Sender<Result<(), WalError>>)>,
    /// Pinned numbers of the raw path, with how many pins each has.
    raw_pins: BTreeMap<u64, u32>,
    /// Pinned numbers of the roll-up path.
    rollup_pins: BTreeMap<u64, u32>,
    /// Bytes of segment files on disk (kept by the committer), for `max_disk_bytes`.
    disk_bytes: u64,
    /// The last commit's error, cleared by the next successful one; shown by `/ready`.
    failure: Option<String>,
    /// Set by [`Wal::close`]: the committer writes what is pending and ends.
    closing: bool,
}

impl State {
    /// The watermark of one path: its lowest pin, or the next number when nothing is pinned.
    fn watermark(&self, path: PinPath) -> u64 {
        let pins = match path {
            PinPath::Raw => &self.raw_pins,
            PinPath::Rollup => &self.rollup_pins,
        };
        pins.keys().next().copied().unwrap_or(self.next_lsn)
    }

    fn pin(&mut self, path: PinPath, lsn: u64) {
        let pins = match path {
            PinPath::Raw => &mut self.raw_pins,
            PinPath::Rollup => &mut self.rollup_pins,
        };
        *pins.entry(lsn).or_default() += 1;
    }

    fn unpin(&mut self, path: PinPath, lsn: u64) {
        let pins = match path {
            PinPath::Raw => &mut self.raw_pins,
            PinPath::Rollup => &mut self.rollup_pins,
        };
        if let Some(count) = pins.get_mut(&lsn) {
            *count -= 1;
            if *count == 0 {
                pins.remove(&lsn);
            }
        }
    }
}

/// The log's shared half; see the module documentation.
#[derive(Debug)]
struct Shared {
    settings: WalSettings,
    state: Mutex<State>,
    /// Wakes the committer when the first record of a group arrives or the log closes.
    wake: Condvar,
    stats: Arc<WalStats>,
    /// This log's identity ([`Wal::id`]).
    id: String,
    /// The committer thread, joined by [`Wal::close`].
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The highest sequence number on disk, moved by the committer after each successful
    /// commit: the writer and the aggregator wait for it ([`WalPin::committed`]) before they
    /// send a record's data to Redis.
    committed: watch::Sender<u64>,
}

impl Shared {
    /// The state; a panic elsewhere while holding the lock leaves plain data that is still
    /// consistent record by record, so a poisoned lock is used as it is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A hold on one record for one path to Redis, released when dropped; see the module
/// documentation. Shared (`Arc`) between the copies of a batch that travel the same path.
#[derive(Debug)]
pub struct WalPin {
    lsn: u64,
    path: PinPath,
    shared: Arc<Shared>,
}

impl WalPin {
    /// The record's sequence number.
    pub fn lsn(&self) -> u64 {
        self.lsn
    }

    /// A handle to wait until the log holds a record on disk.
    pub fn committed(&self) -> Committed {
        Committed(self.shared.committed.subscribe())
    }
}

/// How long [`Committed::reached`] waits for a commit before it gives up. A commit takes a few
/// milliseconds; only a log whose disk fails keeps its records from ever committing, and those
/// records were answered with an error (their charge points resend them), so after this long
/// their data goes on to Redis as it did before the wait existed.
const COMMIT_WAIT: Duration = Duration::from_secs(5);

/// Waits for the log's commits: what makes the log *write-ahead*. A record's samples go on to
/// the buffer, the stream and the aggregator at once (alerts stay instant), but nothing of it
/// may reach Redis before the record is on disk: data in Redis whose record a crash then took
/// from the log would be there half (the raw chunk without its roll-up, say), and a replay
/// could not complete it. Waiting here costs nothing in practice: a buffer or roll-up flush
/// comes long after the ~2 ms commit of the records it carries.
#[derive(Debug, Clone)]
pub struct Committed(watch::Receiver<u64>);

impl Committed {
    /// Resolves once every record up to `lsn` is on disk (or after [`COMMIT_WAIT`], see there).
    pub async fn reached(mut self, lsn: u64) {
        if *self.0.borrow() >= lsn {
            return;
        }
        if tokio::time::timeout(COMMIT_WAIT, self.0.wait_for(|&on_disk| on_disk >= lsn))
            .await
            .is_err()
        {
            log::warn!("WAL: record {lsn} not committed after {COMMIT_WAIT:?}; its data goes to Redis anyway.");
        }
    }
}

impl Drop for WalPin {
    fn drop(&mut self) {
        self.shared.lock().unpin(self.path, self.lsn);
    }
}

/// Resolves when the record is on disk (as `wal.fsync` defines it), or with the reason it
/// could not be written.
#[derive(Debug)]
pub struct Durable(oneshot::Receiver<Result<(), WalError>>);

impl Durable {
    /// Waits for the commit that carries the record.
    pub async fn wait(self) -> Result<(), WalError> {
        self.0.await.unwrap_or(Err(WalError::Closed))
    }
}

/// What an append hands back: the pins for the paths asked for, and the commit to wait for.
#[derive(Debug)]
pub struct Appended {
    /// The record's sequence number.
    pub lsn: u64,
    /// Pin for the raw path (always asked for: every record carries something to store).
    pub raw: Arc<WalPin>,
    /// Pin for the roll-up path, when the record has samples.
    pub rollup: Option<Arc<WalPin>>,
    /// Resolves once the record is durable.
    pub durable: Durable,
}

/// A record read back at start, pinned for each path that still needs it.
#[derive(Debug)]
pub struct Replayed {
    /// The record.
    pub record: Record,
    /// Set when the raw chunks may lack it (at or above the raw watermark).
    pub raw: Option<Arc<WalPin>>,
    /// Set when the roll-ups may lack it (it has samples, at or above the roll-up watermark).
    pub rollup: Option<Arc<WalPin>>,
    /// The raw chunks already hold its samples ([`replay::trim`]): only its record changes
    /// (if any) go to the writer again.
    pub samples_stored: bool,
}

/// How long [`Wal::open`] waits for the directory's lock before it answers
/// [`OpenError::Locked`].
const LOCK_WAIT: Duration = Duration::from_secs(2);

/// Handle to the log; cheap to clone (one per charge point actor).
#[derive(Debug, Clone)]
pub struct Wal {
    shared: Arc<Shared>,
}

impl Wal {
    /// Opens (creating) the directory, locks it, reads the segments left by earlier runs
    /// (cutting off torn tails), starts the committer on a new segment, and returns the
    /// records a replay must feed to the writer and the aggregator.
    pub fn open(
        settings: WalSettings,
        stats: Arc<WalStats>,
    ) -> Result<(Wal, Vec<Replayed>), OpenError> {
        let dir = settings.dir.clone();
        let io_error = |source| OpenError::Io {
            dir: dir.display().to_string(),
            source,
        };
        fs::create_dir_all(&dir).map_err(io_error)?;
        let lock = File::create(dir.join("LOCK")).map_err(io_error)?;
        // A lock can outlive its holder by a moment: a process that forked just before the
        // holder closed it keeps a copy until its exec, and a restarted service may start while
        // the old process is still exiting. So wait a little before calling it taken.
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(OpenError::Locked(dir.display().to_string()))
                }
                Err(fs::TryLockError::Error(source)) => return Err(io_error(source)),
            }
        }

        let (raw_mark, rollup_mark) = segment::read_checkpoint(&dir);
        let mut next_lsn = raw_mark.max(rollup_mark).max(1);
        let mut kept = Vec::new();
        let mut records = Vec::new();
        for (number, path) in segment::list(&dir).map_err(io_error)? {
            let scan = match segment::scan_and_repair(&path) {
                Ok(scan) => scan,
                Err(error) => {
                    log::error!(
                        "WAL segment {} is unreadable ({error}); its records cannot be replayed.",
                        path.display()
                    );
                    continue;
                }
            };
            if let Some((bytes, why)) = &scan.bad_tail {
                stats.tails_truncated.fetch_add(1, Ordering::Relaxed);
                log::warn!(
                    "WAL segment {}: cut off {bytes} unreadable bytes at its end ({why}); a crash interrupted a write there, before it was answered.",
                    path.display()
                );
            }
            next_lsn = next_lsn.max(scan.last_lsn + 1).max(number);
            let needed = scan.last_lsn >= raw_mark.min(rollup_mark) && !scan.records.is_empty();
            if needed {
                kept.push(committer::Sealed {
                    path,
                    last_lsn: scan.last_lsn,
                    bytes: scan.good_bytes,
                });
                records.extend(scan.records.into_iter().filter(|r| {
                    r.lsn >= raw_mark || (r.lsn >= rollup_mark && !r.samples.is_empty())
                }));
            } else if let Err(error) = fs::remove_file(&path) {
                log::warn!("WAL segment {} not deleted: {error}.", path.display());
            }
        }

        let disk_bytes = kept.iter().map(|s| s.bytes).sum();
        let shared = Arc::new(Shared {
            settings,
            state: Mutex::new(State {
                next_lsn,
                pending: Vec::new(),
                waiters: Vec::new(),
                raw_pins: BTreeMap::new(),
                rollup_pins: BTreeMap::new(),
                disk_bytes,
                failure: None,
                closing: false,
            }),
            wake: Condvar::new(),
            stats: stats.clone(),
            thread: Mutex::new(None),
            id: segment::read_or_create_id(&dir).map_err(io_error)?,
            // Everything read back at start is on disk already.
            committed: watch::Sender::new(next_lsn.saturating_sub(1)),
        });
        let replay = {
            let mut state = shared.lock();
            records
                .into_iter()
                .map(|record| {
                    let mut pin = |path| {
                        state.pin(path, record.lsn);
                        Some(Arc::new(WalPin {
                            lsn: record.lsn,
                            path,
                            shared: shared.clone(),
                        }))
                    };
                    let raw = if record.lsn >= raw_mark {
                        pin(PinPath::Raw)
                    } else {
                        None
                    };
                    let rollup = if record.lsn >= rollup_mark && !record.samples.is_empty() {
                        pin(PinPath::Rollup)
                    } else {
                        None
                    };
                    Replayed {
                        record,
                        raw,
                        rollup,
                        samples_stored: false,
                    }
                })
                .collect::<Vec<_>>()
        };
        stats
            .records_replayed
            .store(replay.len() as u64, Ordering::Relaxed);
        if !replay.is_empty() {
            log::info!(
                "WAL: replaying {} records (from {}) left by the previous run.",
                replay.len(),
                dir.display()
            );
        }
        committer::start(shared.clone(), kept, next_lsn, lock).map_err(io_error)?;
        Ok((Wal { shared }, replay))
    }

    /// Appends what one request of `charge_point` adds to the store. The samples and changes
    /// go on to the buffer, stream and writer at once (alerts stay instant); the CALLRESULT
    /// waits for [`Appended::durable`], and the writes to Redis for the same commit
    /// ([`Committed`]). Fails at once when the log is full.
    pub fn append(
        &self,
        charge_point: &ChargePointId,
        samples: &[Sample],
        ops: &[StoreOp],
    ) -> Result<Appended, WalError> {
        let encoded = record::encode(charge_point, samples, ops);
        let size = (record::HEADER_BYTES + 8 + encoded.body.len()) as u64;
        let (tx, rx) = oneshot::channel();
        let mut state = self.shared.lock();
        if state.closing {
            return Err(WalError::Closed);
        }
        let limit = self.shared.settings.max_disk_bytes;
        let used = state.disk_bytes + state.pending.len() as u64;
        if limit > 0 && used + size > limit {
            drop(state);
            self.shared
                .stats
                .appends_failed
                .fetch_add(1, Ordering::Relaxed);
            return Err(WalError::Full { used, limit });
        }
        let lsn = state.next_lsn;
        state.next_lsn += 1;
        let first = state.pending.is_empty();
        record::stamp(&encoded, lsn, &mut state.pending);
        let end = state.pending.len();
        state.waiters.push((end, tx));
        state.pin(PinPath::Raw, lsn);
        let rollup = !samples.is_empty();
        if rollup {
            state.pin(PinPath::Rollup, lsn);
        }
        drop(state);
        if first {
            self.shared.wake.notify_one();
        }
        self.shared.stats.records.fetch_add(1, Ordering::Relaxed);
        let pin = |path| {
            Arc::new(WalPin {
                lsn,
                path,
                shared: self.shared.clone(),
            })
        };
        Ok(Appended {
            lsn,
            raw: pin(PinPath::Raw),
            rollup: rollup.then(|| pin(PinPath::Rollup)),
            durable: Durable(rx),
        })
    }

    /// Why the log cannot take records right now (full, or the last write failed), for
    /// `/ready`; `None` when it can.
    pub fn trouble(&self) -> Option<String> {
        let state = self.shared.lock();
        if let Some(failure) = &state.failure {
            return Some(failure.clone());
        }
        let limit = self.shared.settings.max_disk_bytes;
        let used = state.disk_bytes + state.pending.len() as u64;
        // From 95 % on: a load balancer hears of it before appends start failing.
        (limit > 0 && used.saturating_mul(100) >= limit.saturating_mul(95))
            .then(|| WalError::Full { used, limit }.to_string())
    }

    /// A random id made when the directory was first used: the marks this log leaves in Redis
    /// (which of its records the raw chunks and roll-ups hold) are named by it, so the logs of
    /// several servers, or a directory wiped and started afresh, never read each other's.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<WalStats> {
        &self.shared.stats
    }

    /// Writes what is pending, retires every segment Redis no longer needs, and stops the
    /// committer (blocking until it has). Called by shutdown after the writer and the
    /// aggregator drained: a clean stop then leaves an empty log.
    pub fn close(&self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
        committer::join(&self.shared);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Location, Measurand, ReadingContext, SampleValue, Unit};

    fn settings(dir: &std::path::Path) -> WalSettings {
        WalSettings {
            dir: dir.to_path_buf(),
            fsync: FsyncPolicy::Batch,
            group_commit: Duration::from_millis(1),
            segment_bytes: 64 * 1024 * 1024,
            max_disk_bytes: 0,
        }
    }

    fn open(settings: WalSettings) -> (Wal, Vec<Replayed>) {
        Wal::open(settings, Arc::new(WalStats::default())).unwrap()
    }

    fn samples(n: usize) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                timestamp: chrono::DateTime::from_timestamp(1_700_000_000 + i as i64, 0).unwrap(),
                connector_id: 1,
                transaction_id: None,
                measurand: Measurand::EnergyActiveImportRegister,
                phase: None,
                location: Location::Outlet,
                context: ReadingContext::SamplePeriodic,
                unit: Unit::Wh,
                value: SampleValue::Number(i as f64 * 10.0),
            })
            .collect()
    }

    fn op() -> StoreOp {
        StoreOp::TransactionStarted {
            transaction_id: 9,
            connector_id: 1,
            id_tag: "TAG".into(),
            meter_start: 0,
            timestamp: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            station_transaction_id: None,
        }
    }

    fn cp() -> ChargePointId {
        ChargePointId::parse("CP-WAL").unwrap()
    }

    #[tokio::test]
    async fn records_come_back_until_both_paths_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, replay) = open(settings(dir.path()));
        assert!(replay.is_empty());
        let first = wal.append(&cp(), &samples(3), &[]).unwrap();
        let second = wal.append(&cp(), &[], &[op()]).unwrap();
        let third = wal.append(&cp(), &samples(2), &[]).unwrap();
        assert_eq!((first.lsn, second.lsn, third.lsn), (1, 2, 3));
        assert!(second.rollup.is_none(), "no samples, nothing to roll up");
        assert_eq!(wal.stats().records.load(Ordering::Relaxed), 3);
        let Appended {
            raw: raw1,
            rollup: rollup1,
            durable,
            ..
        } = first;
        durable.wait().await.unwrap();
        second.durable.wait().await.unwrap();
        let Appended {
            raw: raw3,
            rollup: rollup3,
            durable,
            ..
        } = third;
        durable.wait().await.unwrap();
        // The first record is in the raw chunks and the roll-ups; the third only in the chunks.
        drop((raw1, rollup1, raw3));
        wal.close();

        let (again, replay) = open(settings(dir.path()));
        let kept: Vec<(u64, bool, bool)> = replay
            .iter()
            .map(|r| (r.record.lsn, r.raw.is_some(), r.rollup.is_some()))
            .collect();
        // Watermarks are low-water marks: the raw path still needs 2, so 3 comes back for it too
        // (the writer's marks in Redis then skip its samples, see `replay::trim`); the roll-up
        // path let go of 1 only, so it starts at 3.
        assert_eq!(kept, vec![(2, true, false), (3, true, true)]);
        assert_eq!(replay[0].record.ops, vec![op()]);
        assert_eq!(replay[1].record.samples, samples(2));
        // Numbers go on after the replayed ones.
        let next = again.append(&cp(), &[], &[op()]).unwrap();
        assert_eq!(next.lsn, 4);
        drop((second.raw, rollup3));
        drop(replay);
        drop(next);
        again.close();
        let (_, replay) = open(settings(dir.path()));
        assert!(replay.is_empty(), "everything was let go");
    }

    /// Write-ahead: a record's data may go to Redis only once the record is on disk. With a
    /// slow group commit the wait is seen to hold until the commit, then to pass at once; a
    /// record read back at start is on disk already.
    #[tokio::test]
    async fn data_waits_for_its_record_to_be_committed() {
        let dir = tempfile::tempdir().unwrap();
        let mut slow = settings(dir.path());
        slow.group_commit = Duration::from_millis(400);
        let (wal, _) = open(slow.clone());
        let appended = wal.append(&cp(), &samples(2), &[]).unwrap();
        let committed = appended.raw.committed();
        let soon = Duration::from_millis(150);
        assert!(
            tokio::time::timeout(soon, committed.clone().reached(appended.lsn))
                .await
                .is_err(),
            "the data went ahead of its record"
        );
        appended.durable.wait().await.unwrap();
        assert!(
            tokio::time::timeout(soon, committed.clone().reached(appended.lsn))
                .await
                .is_ok(),
            "the commit did not release the data"
        );
        // Still pinned (not in Redis), so the close keeps it for the next start.
        wal.close();
        drop((appended.raw, appended.rollup));
        let (again, replay) = open(slow);
        let kept = replay[0].raw.as_ref().unwrap();
        assert!(
            tokio::time::timeout(soon, kept.committed().reached(kept.lsn()))
                .await
                .is_ok(),
            "a replayed record is on disk"
        );
        drop(replay);
        again.close();
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_off_and_the_rest_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open(settings(dir.path()));
        let held: Vec<Appended> = (0..2)
            .map(|_| wal.append(&cp(), &samples(4), &[]).unwrap())
            .collect();
        let mut pins = Vec::new();
        for appended in held {
            appended.durable.wait().await.unwrap();
            pins.push(appended.raw);
        }
        wal.close();
        // A crash mid-write: half a record after the two whole ones.
        let (_, path) = segment::list(dir.path()).unwrap().pop().unwrap();
        let mut bytes = fs::read(&path).unwrap();
        let whole = bytes.len();
        bytes.extend_from_within(..whole / 4);
        fs::write(&path, &bytes).unwrap();
        let stats = Arc::new(WalStats::default());
        let (_, replay) = Wal::open(settings(dir.path()), stats.clone()).unwrap();
        assert_eq!(replay.len(), 2);
        assert_eq!(stats.tails_truncated.load(Ordering::Relaxed), 1);
        assert_eq!(fs::metadata(&path).unwrap().len() as usize, whole);
    }

    #[tokio::test]
    async fn full_segments_are_deleted_once_redis_holds_them() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open(WalSettings {
            segment_bytes: 1024,
            ..settings(dir.path())
        });
        let mut pins = Vec::new();
        for _ in 0..40 {
            let appended = wal.append(&cp(), &samples(20), &[]).unwrap();
            appended.durable.wait().await.unwrap();
            pins.push((appended.raw, appended.rollup));
        }
        let segments = segment::list(dir.path()).unwrap().len();
        assert!(segments > 3, "{segments} segments");
        pins.clear();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while segment::list(dir.path()).unwrap().len() > 1 {
            assert!(std::time::Instant::now() < deadline, "segments not retired");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(wal.stats().segments_retired.load(Ordering::Relaxed) >= 3);
        wal.close();
        assert!(
            segment::list(dir.path()).unwrap().is_empty(),
            "a clean stop leaves no segment"
        );
    }

    #[tokio::test]
    async fn a_full_log_refuses_appends_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open(WalSettings {
            segment_bytes: 4096,
            max_disk_bytes: 8192,
            ..settings(dir.path())
        });
        let mut pins = Vec::new();
        let refused = loop {
            match wal.append(&cp(), &samples(30), &[]) {
                Ok(appended) => {
                    appended.durable.wait().await.unwrap();
                    pins.push(appended.raw);
                    assert!(pins.len() < 100, "never refused");
                }
                Err(error) => break error,
            }
        };
        assert!(matches!(refused, WalError::Full { limit: 8192, .. }));
        assert!(wal.trouble().unwrap().contains("full"));
        assert_eq!(wal.stats().appends_failed.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn each_fsync_policy_syncs_as_it_says() {
        for (policy, expected) in [
            (FsyncPolicy::Always, 5..=5),
            (FsyncPolicy::Batch, 1..=5),
            (FsyncPolicy::Never, 0..=0),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (wal, _) = open(WalSettings {
                fsync: policy,
                group_commit: Duration::from_millis(20),
                ..settings(dir.path())
            });
            let appended: Vec<Appended> = (0..5)
                .map(|_| wal.append(&cp(), &samples(2), &[]).unwrap())
                .collect();
            for a in appended {
                a.durable.wait().await.unwrap();
            }
            let fsyncs = wal.stats().fsyncs.load(Ordering::Relaxed);
            assert!(expected.contains(&fsyncs), "{policy:?}: {fsyncs} fsyncs");
            if policy == FsyncPolicy::Batch {
                // Five appends within one 20 ms group share one commit.
                assert_eq!(wal.stats().commits.load(Ordering::Relaxed), 1);
            }
        }
    }

    #[test]
    fn a_directory_serves_one_server() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _) = open(settings(dir.path()));
        assert!(matches!(
            Wal::open(settings(dir.path()), Arc::new(WalStats::default())),
            Err(OpenError::Locked(_))
        ));
        wal.close();
        let (_, _) = open(settings(dir.path()));
    }
}
