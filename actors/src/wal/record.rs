//! The on-disk form of one write-ahead log record, and its reader.
//!
//! ```text
//! record  = len:u32le crc:u32le payload            (len = bytes of payload, crc = CRC-32 of payload)
//! payload = lsn:u64le kind:u8 id_len:u16le id
//!           block_len:u32le block                  (chunk::encode_block of the samples; 0 = none)
//!           ops                                    (JSON array of StoreOp; empty = none)
//! ```
//!
//! The length and CRC let a reader tell a complete record from a torn one (a crash mid-write)
//! or a corrupt one, so it can stop there instead of replaying garbage. The samples use the raw
//! chunk block format Redis already stores (compact, and fuzzed with the chunk decoder); the
//! rare record changes (transactions, boots, statuses) are JSON, where readability beats bytes.

use crate::exchange::StoreOp;
use crate::id::ChargePointId;
use crate::sample::Sample;
use crate::store::chunk;

/// Bytes before the payload: length and CRC.
pub const HEADER_BYTES: usize = 8;

/// Largest payload a reader accepts; a larger length can only be corruption (one MeterValues is
/// bounded by `limits.max_frame_bytes`, 64 KiB by default, and encodes smaller than its JSON).
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024 * 1024;

/// The only record kind so far: what one request of one charge point adds to the store.
const KIND_BATCH: u8 = 1;

/// One decoded record: the samples and record changes one request of one charge point made,
/// exactly as the charge point actor handed them on after its CALLRESULT was earned.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Log sequence number: increases by one per record across segments and restarts.
    pub lsn: u64,
    /// Whose data this is.
    pub charge_point: ChargePointId,
    /// Samples to store and roll up.
    pub samples: Vec<Sample>,
    /// Record changes (transactions, boot, status) to store.
    pub ops: Vec<StoreOp>,
}

/// Why a record could not be read; the reader stops at the first one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes than the header or the length promise: a write cut short by a crash.
    #[error("record cut short ({have} of {need} bytes)")]
    Torn {
        /// Bytes present.
        have: usize,
        /// Bytes the header announced.
        need: usize,
    },
    /// The length is larger than any record this server writes.
    #[error("record length {0} is implausible")]
    Length(usize),
    /// The CRC does not match: a torn write whose length happened to fit, or corruption.
    #[error("record checksum mismatch")]
    Checksum,
    /// The checksum matched but the payload does not parse (a bug, or a foreign file).
    #[error("record payload malformed: {0}")]
    Payload(String),
}

/// The part of a record that does not depend on its sequence number, prepared outside the
/// log's lock so the critical section only stamps the number and copies bytes.
#[derive(Debug)]
pub struct Encoded {
    /// Payload bytes after the sequence number.
    pub body: Vec<u8>,
    /// CRC state over `body`, combined with the sequence number's bytes when stamped.
    pub crc: crc32fast::Hasher,
}

/// Encodes everything of a record but its sequence number.
pub fn encode(charge_point: &ChargePointId, samples: &[Sample], ops: &[StoreOp]) -> Encoded {
    let id = charge_point.as_str().as_bytes();
    let mut body = Vec::with_capacity(8 + id.len() + samples.len() * 8 + 64);
    body.push(KIND_BATCH);
    // Ids are at most 48 characters (`id::MAX_ID_LEN`), so at most 192 bytes.
    body.extend_from_slice(&(id.len().min(usize::from(u16::MAX)) as u16).to_le_bytes());
    body.extend_from_slice(id);
    let at = body.len();
    body.extend_from_slice(&[0; 4]);
    chunk::encode_block(samples, &mut body);
    let block_len = (body.len() - at - 4) as u32;
    body[at..at + 4].copy_from_slice(&block_len.to_le_bytes());
    if !ops.is_empty() {
        // Serialising plain data into a Vec cannot fail; an error would only drop the ops,
        // which the writer still receives in memory.
        if let Err(error) = serde_json::to_writer(&mut body, ops) {
            log::error!("{charge_point}: record changes not logged: {error}.");
        }
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&body);
    Encoded { body, crc }
}

/// Appends the complete record (header, sequence number, body) to `out`.
pub fn stamp(encoded: &Encoded, lsn: u64, out: &mut Vec<u8>) {
    let lsn_bytes = lsn.to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&lsn_bytes);
    crc.combine(&encoded.crc);
    let len = (lsn_bytes.len() + encoded.body.len()) as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&lsn_bytes);
    out.extend_from_slice(&encoded.body);
}

/// Reads the record at the start of `bytes`; returns it with the bytes it took. Never panics,
/// whatever the bytes (fuzzed).
pub fn decode(bytes: &[u8]) -> Result<(Record, usize), RecordError> {
    if bytes.len() < HEADER_BYTES {
        return Err(RecordError::Torn {
            have: bytes.len(),
            need: HEADER_BYTES,
        });
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if !(8..=MAX_PAYLOAD_BYTES).contains(&len) {
        return Err(RecordError::Length(len));
    }
    let need = HEADER_BYTES + len;
    let Some(payload) = bytes.get(HEADER_BYTES..need) else {
        return Err(RecordError::Torn {
            have: bytes.len(),
            need,
        });
    };
    if crc32fast::hash(payload) != crc {
        return Err(RecordError::Checksum);
    }
    Ok((decode_payload(payload)?, need))
}

/// Parses a payload whose checksum matched.
fn decode_payload(payload: &[u8]) -> Result<Record, RecordError> {
    let bad = |what: &str| RecordError::Payload(what.to_owned());
    let mut rest = payload;
    let mut take = |n: usize| -> Result<&[u8], RecordError> {
        if rest.len() < n {
            return Err(bad("shorter than its fields"));
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let lsn = u64::from_le_bytes(take(8)?.try_into().map_err(|_| bad("lsn"))?);
    if take(1)? != [KIND_BATCH] {
        return Err(bad("unknown record kind"));
    }
    let id_len = u16::from_le_bytes(take(2)?.try_into().map_err(|_| bad("id length"))?);
    let id = std::str::from_utf8(take(usize::from(id_len))?).map_err(|_| bad("id not UTF-8"))?;
    let charge_point = ChargePointId::parse(id).map_err(|e| bad(&e.to_string()))?;
    let block_len = u32::from_le_bytes(take(4)?.try_into().map_err(|_| bad("block length"))?);
    let block = take(block_len as usize)?;
    let samples = if block.is_empty() {
        Vec::new()
    } else {
        match chunk::decode_chunk(block) {
            (samples, None) => samples,
            (_, Some(error)) => return Err(bad(&error.to_string())),
        }
    };
    let ops = if rest.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(rest).map_err(|e| bad(&e.to_string()))?
    };
    Ok(Record {
        lsn,
        charge_point,
        samples,
        ops,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Location, Measurand, ReadingContext, SampleValue, Unit};

    fn sample(second: i64, value: SampleValue) -> Sample {
        Sample {
            timestamp: chrono::DateTime::from_timestamp(1_700_000_000 + second, 5_000_000).unwrap(),
            connector_id: 2,
            transaction_id: Some(7),
            measurand: Measurand::EnergyActiveImportRegister,
            phase: None,
            location: Location::Outlet,
            context: ReadingContext::SamplePeriodic,
            unit: Unit::Wh,
            value,
        }
    }

    fn record() -> Record {
        Record {
            lsn: 42,
            charge_point: ChargePointId::parse("CP-ü7").unwrap(),
            samples: vec![
                sample(0, SampleValue::Number(1234.5)),
                sample(10, SampleValue::Signed("<signed/>".into())),
            ],
            ops: vec![StoreOp::TransactionStopped {
                transaction_id: 7,
                id_tag: Some("TAG".into()),
                meter_stop: 1300,
                timestamp: chrono::DateTime::from_timestamp(1_700_000_020, 0).unwrap(),
                reason: None,
            }],
        }
    }

    fn bytes_of(record: &Record) -> Vec<u8> {
        let mut out = Vec::new();
        let encoded = encode(&record.charge_point, &record.samples, &record.ops);
        stamp(&encoded, record.lsn, &mut out);
        out
    }

    #[test]
    fn a_record_round_trips() {
        let record = record();
        let bytes = bytes_of(&record);
        assert_eq!(decode(&bytes).unwrap(), (record, bytes.len()));
        let empty = Record {
            samples: Vec::new(),
            ops: Vec::new(),
            ..self::record()
        };
        let bytes = bytes_of(&empty);
        assert_eq!(decode(&bytes).unwrap().0, empty);
    }

    #[test]
    fn every_cut_is_torn_and_every_flipped_bit_is_caught() {
        let bytes = bytes_of(&record());
        for cut in 0..bytes.len() {
            assert!(
                matches!(
                    decode(&bytes[..cut]),
                    Err(RecordError::Torn { .. } | RecordError::Length(_))
                ),
                "cut at {cut}"
            );
        }
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert!(decode(&flipped).is_err(), "bit flipped at {at}");
        }
    }
}
