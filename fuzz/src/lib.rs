//! Helpers shared by the fuzz targets: bitwise sample comparison and an allocation probe.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use actors::sample::{Sample, SampleValue};

/// Whether two floats are the same value bit for bit, treating every NaN as one (a NaN payload
/// is not something a meter reading carries).
pub fn same_f64(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// `Sample` equality with numbers compared bit for bit (`==` says NaN != NaN and -0 == 0).
pub fn same_sample(a: &Sample, b: &Sample) -> bool {
    let value = match (&a.value, &b.value) {
        (SampleValue::Number(x), SampleValue::Number(y)) => same_f64(*x, *y),
        (SampleValue::Signed(x), SampleValue::Signed(y)) => x == y,
        _ => false,
    };
    value
        && a.timestamp == b.timestamp
        && a.connector_id == b.connector_id
        && a.transaction_id == b.transaction_id
        && a.measurand == b.measurand
        && a.phase == b.phase
        && a.location == b.location
        && a.context == b.context
        && a.unit == b.unit
}

/// Asserts two sample lists are the same, bit for bit and in order.
pub fn assert_same_samples(got: &[Sample], want: &[Sample], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: sample count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            same_sample(g, w),
            "{what}: sample {i}: got {g:?}, want {w:?}"
        );
    }
}

/// The system allocator, recording the largest single allocation since the last
/// [`LargestAllocation::reset`]; lets a target check that a decoder sizes its buffers from the
/// bytes it has, not from a count an attacker wrote.
pub struct LargestAllocation;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

impl LargestAllocation {
    /// Starts a new measurement.
    pub fn reset() {
        LARGEST.store(0, Ordering::Relaxed);
    }

    /// The largest allocation (or reallocation) size requested since the last reset.
    pub fn largest() -> usize {
        LARGEST.load(Ordering::Relaxed)
    }
}

// SAFETY: every call is forwarded unchanged to `System`; only a counter is updated.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
