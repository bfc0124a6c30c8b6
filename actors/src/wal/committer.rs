//! The committer: the one thread that writes the log. It takes everything appended since its
//! last commit (waiting `wal.group_commit_ms` after the first record so that others can join),
//! writes it with one `write`, forces it with one `fdatasync`, and answers every waiter; then it
//! seals a full segment, deletes the sealed segments Redis no longer needs and refreshes the
//! checkpoint. Blocking file I/O lives here, never on an actix arbiter.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{segment, FsyncPolicy, PinPath, Shared, WalError};

/// How often an idle committer wakes to retire segments and refresh the checkpoint: the
/// delay between a batch reaching Redis and the checkpoint saying so.
const HOUSEKEEPING: Duration = Duration::from_millis(100);

/// A sealed segment still on disk.
#[derive(Debug)]
pub(super) struct Sealed {
    /// Its file.
    pub path: PathBuf,
    /// The highest sequence number it may hold.
    pub last_lsn: u64,
    /// Its size.
    pub bytes: u64,
}

/// The committer's own state (nothing here is shared).
struct Committer {
    shared: Arc<Shared>,
    /// The open segment.
    file: File,
    /// Its path.
    path: PathBuf,
    /// Its size.
    file_bytes: u64,
    /// Highest sequence number written to it (0: none).
    file_last_lsn: u64,
    /// Sealed segments still needed, oldest first.
    sealed: VecDeque<Sealed>,
    /// The buffer swapped with the appenders' one at each commit, so neither reallocates.
    spare: Vec<u8>,
    /// Watermarks of the checkpoint on disk.
    marks: (u64, u64),
    /// The directory lock, released when the committer ends.
    _lock: File,
}

/// Opens a new segment at `next_lsn` and starts the thread.
pub(super) fn start(
    shared: Arc<Shared>,
    sealed: Vec<Sealed>,
    next_lsn: u64,
    lock: File,
) -> io::Result<()> {
    let dir = shared.settings.dir.clone();
    let (path, file) = segment::create(&dir, next_lsn)?;
    let marks = segment::read_checkpoint(&dir);
    let committer = Committer {
        shared: shared.clone(),
        file,
        path,
        file_bytes: 0,
        file_last_lsn: 0,
        sealed: sealed.into(),
        spare: Vec::new(),
        marks,
        _lock: lock,
    };
    committer.publish_disk();
    let handle = std::thread::Builder::new()
        .name("wal-committer".into())
        .spawn(move || committer.run())?;
    *shared.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
    Ok(())
}

/// Waits for the thread to end (after [`super::Wal::close`] set `closing`).
pub(super) fn join(shared: &Shared) {
    let handle = shared
        .thread
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(handle) = handle {
        if handle.join().is_err() {
            log::error!(
                "The WAL committer panicked; unwritten records were answered with an error."
            );
        }
    }
}

impl Committer {
    fn run(mut self) {
        let settings = self.shared.settings.clone();
        let group = settings.fsync != FsyncPolicy::Always && !settings.group_commit.is_zero();
        let mut last_housekeeping = Instant::now();
        loop {
            let (waiters, closing, next_lsn) = {
                let mut state = self.shared.lock();
                if state.pending.is_empty() && !state.closing {
                    state = self
                        .shared
                        .wake
                        .wait_timeout(state, HOUSEKEEPING)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                if group && !state.pending.is_empty() && !state.closing {
                    // Let the records of other sessions that arrive meanwhile share the fsync.
                    drop(state);
                    std::thread::sleep(settings.group_commit);
                    state = self.shared.lock();
                }
                std::mem::swap(&mut state.pending, &mut self.spare);
                let waiters = std::mem::take(&mut state.waiters);
                (waiters, state.closing, state.next_lsn)
            };
            if !waiters.is_empty() {
                self.commit(waiters, next_lsn - 1);
            }
            self.spare.clear();
            if closing || last_housekeeping.elapsed() >= HOUSEKEEPING {
                self.housekeep(closing);
                last_housekeeping = Instant::now();
            }
            if closing && self.shared.lock().pending.is_empty() {
                return;
            }
        }
    }

    /// Writes `self.spare` (records up to `last_lsn`) and answers `waiters`: one write and one
    /// sync for all, or one of each per record with `fsync = "always"`.
    fn commit(
        &mut self,
        waiters: Vec<(usize, oneshot::Sender<Result<(), WalError>>)>,
        last_lsn: u64,
    ) {
        let started = Instant::now();
        let policy = self.shared.settings.fsync;
        let stats = self.shared.stats.clone();
        let mut waiters = waiters.into_iter().peekable();
        let mut written_to = 0usize;
        let mut failure = None;
        // Answered last, once the counters and `/ready` tell the same story as the answers.
        let mut answers = Vec::with_capacity(waiters.len());
        while waiters.peek().is_some() {
            // The group: every record, or just the next one.
            let mut group = Vec::new();
            let mut end = written_to;
            while let Some((record_end, _)) = waiters.peek() {
                end = *record_end;
                if let Some(waiter) = waiters.next() {
                    group.push(waiter.1);
                }
                if policy == FsyncPolicy::Always {
                    break;
                }
            }
            let result = self.write(written_to, end, policy);
            match result {
                Ok(()) => {
                    written_to = end;
                    answers.extend(group.into_iter().map(|waiter| (waiter, Ok(()))));
                }
                Err(error) => {
                    let error = WalError::Io(error.to_string());
                    for waiter in group.into_iter().chain(waiters.by_ref().map(|w| w.1)) {
                        answers.push((waiter, Err(error.clone())));
                        stats.appends_failed.fetch_add(1, Ordering::Relaxed);
                    }
                    failure = Some(error);
                    break;
                }
            }
        }
        stats
            .bytes_written
            .fetch_add(written_to as u64, Ordering::Relaxed);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats
            .commit_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.file_last_lsn = last_lsn;
        {
            let mut state = self.shared.lock();
            match &failure {
                Some(error) => {
                    if state.failure.is_none() {
                        log::error!("{error}; the charge points are answered with an error and will resend.");
                    }
                    state.failure = Some(error.to_string());
                }
                None => {
                    if state.failure.take().is_some() {
                        log::info!("The write-ahead log is writable again.");
                    }
                }
            }
        }
        if failure.is_none() {
            // Records up to here may now go on to Redis (`Committed`).
            self.shared.committed.send_if_modified(|on_disk| {
                let moved = last_lsn > *on_disk;
                *on_disk = (*on_disk).max(last_lsn);
                moved
            });
        }
        // Published before the answers go out: whoever an answer reaches (a test reading
        // `/metrics` right after its CALLRESULT) must see the bytes it was answered for.
        self.publish_disk();
        for (waiter, result) in answers {
            let _ = waiter.send(result);
        }
        if self.file_bytes >= self.shared.settings.segment_bytes {
            if let Err(error) = self.rotate(last_lsn + 1) {
                log::error!(
                    "WAL: a new segment could not be opened ({error}); writing on into {}.",
                    self.path.display()
                );
            }
            self.publish_disk();
        }
    }

    /// Writes `spare[from..to]` to the segment and syncs it as the policy says. On failure the
    /// segment is cut back to where it was, so no half record is left for a replay to stumble
    /// on, and the records are answered with the error (their charge points resend them).
    fn write(&mut self, from: usize, to: usize, policy: FsyncPolicy) -> io::Result<()> {
        let result = self.file.write_all(&self.spare[from..to]).and_then(|()| {
            if policy == FsyncPolicy::Never {
                Ok(())
            } else {
                self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
                self.file.sync_data()
            }
        });
        match result {
            Ok(()) => {
                self.file_bytes += (to - from) as u64;
                Ok(())
            }
            Err(error) => {
                if let Err(cut) = self.file.set_len(self.file_bytes) {
                    log::error!("WAL segment {} could not be cut back after a failed write ({cut}); its tail will be cut at the next start.", self.path.display());
                }
                // The file position is past the cut; move it back with the length.
                use std::io::Seek;
                let _ = self.file.seek(io::SeekFrom::Start(self.file_bytes));
                Err(error)
            }
        }
    }

    /// Seals the open segment and opens the next, named by the first number it will hold.
    fn rotate(&mut self, next_lsn: u64) -> io::Result<()> {
        let (path, file) = segment::create(&self.shared.settings.dir, next_lsn)?;
        let old = std::mem::replace(&mut self.file, file);
        if self.shared.settings.fsync != FsyncPolicy::Never {
            old.sync_all()?;
        }
        self.sealed.push_back(Sealed {
            path: std::mem::replace(&mut self.path, path),
            last_lsn: self.file_last_lsn,
            bytes: self.file_bytes,
        });
        self.file_bytes = 0;
        Ok(())
    }

    /// Refreshes the checkpoint and deletes the sealed segments whose records are all below
    /// both watermarks; when closing, the open segment too if nothing in it is still needed.
    fn housekeep(&mut self, closing: bool) {
        let (raw, rollup) = {
            let state = self.shared.lock();
            (
                state.watermark(PinPath::Raw),
                state.watermark(PinPath::Rollup),
            )
        };
        let stats = &self.shared.stats;
        stats.raw_watermark.store(raw, Ordering::Relaxed);
        stats.rollup_watermark.store(rollup, Ordering::Relaxed);
        let dir = self.shared.settings.dir.clone();
        if (raw, rollup) != self.marks {
            // Before any deletion: a checkpoint must never be behind the files it lets go.
            match segment::write_checkpoint(&dir, raw, rollup) {
                Ok(()) => self.marks = (raw, rollup),
                Err(error) => {
                    log::warn!("WAL checkpoint not written ({error}); segments are kept.");
                    return;
                }
            }
        }
        let low = raw.min(rollup);
        let mut retired = false;
        while self.sealed.front().is_some_and(|s| s.last_lsn < low) {
            let Some(done) = self.sealed.pop_front() else {
                break;
            };
            match fs::remove_file(&done.path) {
                Ok(()) => {
                    retired = true;
                    stats.segments_retired.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    log::warn!("WAL segment {} not deleted: {error}.", done.path.display());
                }
            }
        }
        if closing && self.file_last_lsn < low {
            // Everything this run wrote is in Redis: a clean stop leaves no segment behind.
            if fs::remove_file(&self.path).is_ok() {
                retired = true;
                self.file_bytes = 0;
            }
        }
        if retired {
            let _ = segment::sync_dir(&dir);
            self.publish_disk();
        }
    }

    /// Publishes the bytes and segments on disk (for `max_disk_bytes` and `/metrics`).
    fn publish_disk(&self) {
        let bytes = self.file_bytes + self.sealed.iter().map(|s| s.bytes).sum::<u64>();
        let stats = &self.shared.stats;
        stats.disk_bytes.store(bytes, Ordering::Relaxed);
        stats
            .segments
            .store(self.sealed.len() as u64 + 1, Ordering::Relaxed);
        self.shared.lock().disk_bytes = bytes;
    }
}
