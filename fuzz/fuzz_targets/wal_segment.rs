//! The write-ahead log's segment reader on arbitrary bytes, as a torn write, a bad disk or a
//! foreign file in `wal.dir` would hand it at start: `segment::scan_bytes`.
//!
//! The first input byte picks the mode: odd bytes are scanned as they are (framing, lengths,
//! checksums); even bytes have every record's CRC set right first, so mutated payloads get past
//! the checksum and reach the payload parser (record kind, id, chunk block, JSON record
//! changes), which random bytes with a random CRC almost never would.
//!
//! Checks beyond "no panic":
//! - no allocation larger than a small multiple of the input (a record's length field never
//!   sizes a buffer on its own);
//! - the readable prefix is exactly what a second scan of that prefix reads, with no bad tail;
//!   and there is a bad tail exactly when the prefix is shorter than the input;
//! - every record read, written again (`record::encode` + `record::stamp`), reads back as the
//!   same record (charge point, number, record changes, samples bit for bit).
#![no_main]

use actors::wal::{record, segment};
use fuzz_support::{assert_same_samples, LargestAllocation};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// `bytes` with the CRC field of each record (as far as the lengths frame them) made right.
fn with_checksums(mut bytes: Vec<u8>) -> Vec<u8> {
    let mut at = 0;
    while at + record::HEADER_BYTES <= bytes.len() {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let end = at + record::HEADER_BYTES + len as usize;
        if end > bytes.len() {
            break;
        }
        let crc = crc32fast::hash(&bytes[at + record::HEADER_BYTES..end]);
        bytes[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
    bytes
}

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let fixed;
    let data = if mode % 2 == 0 {
        fixed = with_checksums(rest.to_vec());
        &fixed[..]
    } else {
        rest
    };
    LargestAllocation::reset();
    let scan = segment::scan_bytes(data);
    let largest = LargestAllocation::largest();
    assert!(
        largest <= 4096 + data.len() * 512,
        "scanning {} bytes allocated {largest} bytes at once",
        data.len()
    );
    let good = usize::try_from(scan.good_bytes).expect("fits");
    assert!(good <= data.len());
    assert_eq!(scan.bad_tail.is_some(), good < data.len(), "{:?}", scan.bad_tail);

    let again = segment::scan_bytes(&data[..good]);
    assert!(again.bad_tail.is_none(), "the readable prefix reads with an error");
    assert_eq!(again.records.len(), scan.records.len());

    for read in &scan.records {
        let mut bytes = Vec::new();
        let encoded = record::encode(&read.charge_point, &read.samples, &read.ops);
        record::stamp(&encoded, read.lsn, &mut bytes);
        let (back, used) = record::decode(&bytes).expect("a re-written record reads back");
        assert_eq!(used, bytes.len());
        assert_eq!(back.lsn, read.lsn);
        assert_eq!(back.charge_point, read.charge_point);
        assert_eq!(back.ops, read.ops);
        assert_same_samples(&back.samples, &read.samples, "re-written record");
    }
});
