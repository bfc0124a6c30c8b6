//! Gives the memory glibc's malloc keeps after frees back to the operating system.
//!
//! glibc returns freed memory to the kernel only from the top of each heap; memory freed in
//! the middle of a heap stays in the process (counted in RSS) until something calls
//! `malloc_trim`, which releases every free page of every arena (`MADV_DONTNEED`). ocpp-meter's
//! periodic work (roll-up flushes, writer pipelines, statistics snapshots) allocates and frees
//! tens of kilobytes per charge point on the main thread, and with 10,000 idle charge points
//! glibc kept ~150 MB of it, ~15 KiB per charge point (issue 13, docs/performance.md).
//!
//! Kept in a crate of its own because the workspace forbids unsafe code, and the call is a
//! foreign function.

use std::time::{Duration, Instant};

/// Releases the free memory of every malloc arena to the operating system. Returns whether
/// any was released and how long the call took (it walks the free lists of every arena,
/// holding each arena's lock while it does). A no-op returning `false` where the C library is
/// not glibc.
pub fn trim() -> (bool, Duration) {
    let started = Instant::now();
    let released = release();
    (released, started.elapsed())
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release() -> bool {
    // SAFETY: malloc_trim takes a byte count to leave untrimmed and works only on glibc's own
    // allocator state, under the allocator's locks; it may be called from any thread at any
    // time, and reads or writes no memory of ours.
    #[allow(unsafe_code)]
    let released = unsafe { libc::malloc_trim(0) };
    released == 1
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release() -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn trimming_after_frees_keeps_the_allocator_usable() {
        let blocks: Vec<Vec<u8>> = (0..1_000).map(|i| vec![i as u8; 4096]).collect();
        drop(blocks);
        let _ = super::trim();
        let again: Vec<Vec<u8>> = (0..1_000).map(|i| vec![i as u8; 4096]).collect();
        assert!(again.iter().enumerate().all(|(i, b)| b[4095] == i as u8));
    }
}
