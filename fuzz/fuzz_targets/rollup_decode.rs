//! `Rollup::decode` on any text, as an hourly or daily aggregate field read from Redis (written
//! by this build's `Rollup::encode` or by the merge Lua script's `%.17g`).
//!
//! Checks beyond "no panic": whatever decodes re-encodes to text that decodes to the same
//! roll-up, bit for bit, so a read-merge-write cycle never drifts.
#![no_main]

use actors::store::aggregates::Rollup;
use fuzz_support::same_f64;
use libfuzzer_sys::fuzz_target;

fn same_opt(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same_f64(a, b),
        (a, b) => a.is_none() && b.is_none(),
    }
}

fn same_point(a: Option<(i64, f64)>, b: Option<(i64, f64)>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.0 == b.0 && same_f64(a.1, b.1),
        (a, b) => a.is_none() && b.is_none(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(rollup) = Rollup::decode(text) else {
        return;
    };
    let encoded = rollup.encode();
    let Some(back) = Rollup::decode(&encoded) else {
        panic!("{text:?} decoded, but its re-encoding {encoded:?} does not");
    };
    let same = back.count == rollup.count
        && same_f64(back.sum, rollup.sum)
        && same_opt(back.min, rollup.min)
        && same_opt(back.max, rollup.max)
        && same_point(back.first, rollup.first)
        && same_point(back.last, rollup.last)
        && same_f64(back.energy, rollup.energy);
    assert!(same, "{text:?} -> {rollup:?} -> {encoded:?} -> {back:?}");
});
