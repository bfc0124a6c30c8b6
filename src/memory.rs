//! The process allocator, and returning freed memory to the operating system.
//!
//! With tens of thousands of mostly idle charge points, what the server holds per connection is
//! the figure that limits a box (issue 13: 16 KiB per idle charge point). Two things decide how
//! much of the memory the server has freed still counts in its RSS:
//!
//! - **The allocator** (feature `jemalloc`, on by default): jemalloc. With glibc's malloc the
//!   same 19,000 idle charge points cost 23.9 KiB of RSS each against 16.5 KiB of heap in use:
//!   glibc's per-thread arenas keep partly used pages of objects of every size side by side,
//!   and freed chunks in the middle of a heap are returned only by `malloc_trim`. jemalloc
//!   keeps objects of one size class together in slabs and returns whole free pages on its own:
//!   18.1 KiB of RSS per idle charge point with the same code (`scripts/fleet-rss.sh`,
//!   docs/performance.md, "Issue 13, memory round 3"). Its background threads are switched on
//!   at start so that dirty pages are purged on jemalloc's decay schedule (10 s) even when no
//!   thread allocates, which is exactly when a fleet has gone quiet.
//! - **Without jemalloc** (the fuzz targets, whose address sanitizer brings its own malloc),
//!   glibc's malloc: the periodic roll-up, writer and statistics work allocates and frees tens of
//!   kilobytes per charge point on the main thread, and glibc gives memory back on its own only
//!   from the top of a heap (with 10,000 idle charge points it kept ~150 MB, ~15 KiB per charge
//!   point). `malloc_trim` releases it, but walks every free chunk of every arena under that
//!   arena's lock (0.5-20 ms with 10,000 charge points), so a thread allocating meanwhile
//!   waits. It is therefore called only once the charge points have been quiet for a whole
//!   [`TRIM_INTERVAL`] (no OCPP message from any of them), once per quiet spell: under load
//!   nothing changes, and a fleet that goes quiet hands back what the busy spell left behind.

#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(not(feature = "jemalloc"))]
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// How long the charge points must be quiet before freed memory is returned.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// OCPP messages received by all servers of this process, counted by the WebSocket sessions
/// for the glibc trimmer's quiet check.
#[cfg(not(feature = "jemalloc"))]
static MESSAGES: AtomicU64 = AtomicU64::new(0);

/// Counts one message from a charge point (a relaxed increment per frame) for the glibc
/// trimmer; with jemalloc, which purges on its own timer, nothing reads the count and the
/// call is empty, so the hot path does not touch a cache line both workers share.
pub fn note_message() {
    #[cfg(not(feature = "jemalloc"))]
    MESSAGES.fetch_add(1, Ordering::Relaxed);
}

/// Starts returning freed memory, once per process (tests start many servers in one process;
/// one start serves them all): jemalloc's background purging where jemalloc is the allocator,
/// otherwise a thread that calls `malloc_trim` once per quiet spell. That thread sleeps between
/// checks and never ends: it holds nothing a shutdown would need to release.
pub fn start_trimmer() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        #[cfg(feature = "jemalloc")]
        if let Err(error) = tikv_jemalloc_ctl::background_thread::write(true) {
            log::warn!("jemalloc's background purging could not start ({error}); freed memory is returned only when a thread allocates.");
        }
        #[cfg(not(feature = "jemalloc"))]
        {
            let spawned = std::thread::Builder::new()
                .name("malloc-trim".into())
                .spawn(trim_when_quiet);
            if let Err(error) = spawned {
                log::warn!("The memory trimming thread could not start ({error}); freed memory stays with the allocator.");
            }
        }
    });
}

/// What the allocator holds, for `/metrics`: bytes in live allocations and bytes of physical
/// memory the allocator has mapped (its part of the RSS). `None` without jemalloc: glibc has no
/// cheap way to tell (`malloc_stats` prints and locks every arena).
pub fn allocator_bytes() -> Option<(u64, u64)> {
    #[cfg(feature = "jemalloc")]
    {
        // The statistics are a snapshot taken when the epoch advances.
        tikv_jemalloc_ctl::epoch::advance().ok()?;
        let allocated = tikv_jemalloc_ctl::stats::allocated::read().ok()?;
        let resident = tikv_jemalloc_ctl::stats::resident::read().ok()?;
        Some((allocated as u64, resident as u64))
    }
    #[cfg(not(feature = "jemalloc"))]
    None
}

/// The trimming thread: one trim per quiet spell.
#[cfg(not(feature = "jemalloc"))]
fn trim_when_quiet() {
    let mut seen = MESSAGES.load(Ordering::Relaxed);
    let mut trimmed = false;
    loop {
        std::thread::sleep(TRIM_INTERVAL);
        let now = MESSAGES.load(Ordering::Relaxed);
        if now != seen {
            seen = now;
            trimmed = false;
        } else if !trimmed {
            trimmed = true;
            let (released, took) = alloc_trim::trim();
            log::debug!("The charge points were quiet for {TRIM_INTERVAL:?}: malloc_trim took {took:?} (memory released: {released}).");
        }
    }
}
