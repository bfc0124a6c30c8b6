//! Returning freed memory to the operating system when the charge points are quiet.
//!
//! With tens of thousands of mostly idle charge points, what the server holds per connection is
//! the figure that limits a box (issue 13: 16 KiB per idle charge point). Much of the RSS after
//! a busy spell is memory already freed that glibc's malloc keeps inside its heaps: the periodic
//! roll-up, writer and statistics work allocates and frees tens of kilobytes per charge point on
//! the main thread, and glibc gives memory back on its own only from the top of a heap. With
//! 10,000 charge points idle after a minute of readings it kept ~150 MB, ~15 KiB per charge
//! point; `malloc_trim` released it (docs/performance.md, issue 13, memory).
//!
//! `malloc_trim` walks every free chunk of every arena under that arena's lock (0.5-20 ms with
//! 10,000 charge points), so a thread allocating meanwhile waits. It is therefore called only
//! once the charge points have been quiet for a whole [`TRIM_INTERVAL`] (no OCPP message from
//! any of them), once per quiet spell: under load nothing changes, and a fleet that goes quiet
//! hands back what the busy spell left behind.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// How long the charge points must be quiet before freed memory is returned.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// OCPP messages received by all servers of this process, counted by the WebSocket sessions.
static MESSAGES: AtomicU64 = AtomicU64::new(0);

/// Counts one message from a charge point (a relaxed increment per frame).
pub fn note_message() {
    MESSAGES.fetch_add(1, Ordering::Relaxed);
}

/// Starts the trimming thread, once per process (tests start many servers in one process; one
/// trimmer serves them all). The thread sleeps between checks and never ends: it holds nothing a
/// shutdown would need to release.
pub fn start_trimmer() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("malloc-trim".into())
            .spawn(trim_when_quiet);
        if let Err(error) = spawned {
            log::warn!("The memory trimming thread could not start ({error}); freed memory stays with the allocator.");
        }
    });
}

/// The trimming thread: one trim per quiet spell.
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
