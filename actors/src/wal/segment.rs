//! Segment files and the checkpoint: naming, listing, scanning with torn-tail repair.
//!
//! A segment is `<first lsn, 20 digits>.wal`, a plain sequence of records
//! ([`super::record`]). Each start of the server opens a new segment, so a torn tail can only be
//! at the end of a segment a crashed process left behind; the scan truncates it there.
//! `checkpoint` holds two watermarks, `raw rollup`: every record below the first is in the raw
//! chunks, every record below the second in the roll-ups, so a replay starts there.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::record::{self, Record, RecordError};

/// File name suffix of a segment.
const SUFFIX: &str = ".wal";

/// Name of the checkpoint file.
const CHECKPOINT: &str = "checkpoint";

/// Path of the segment whose first record is `lsn`.
pub fn path_for(dir: &Path, lsn: u64) -> PathBuf {
    dir.join(format!("{lsn:020}{SUFFIX}"))
}

/// Creates the segment whose first record will be `lsn` and makes its directory entry durable.
/// A file of that name can only be an empty or unreadable segment of an earlier run (one with
/// records would have raised the next number past its name), so it is emptied.
pub fn create(dir: &Path, lsn: u64) -> io::Result<(PathBuf, File)> {
    let path = path_for(dir, lsn);
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)?;
    sync_dir(dir)?;
    Ok((path, file))
}

/// The segments in `dir`, oldest first, with the number in their name.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(number) = name.strip_suffix(SUFFIX).and_then(|n| n.parse().ok()) {
            segments.push((number, path));
        }
    }
    segments.sort();
    Ok(segments)
}

/// What a scan of one segment found.
#[derive(Debug, Default)]
pub struct Scan {
    /// The readable records, in order.
    pub records: Vec<Record>,
    /// Highest sequence number read (0 when none).
    pub last_lsn: u64,
    /// Bytes of readable records: where the file was cut when it had a bad tail.
    pub good_bytes: u64,
    /// Bytes after the last readable record, and why they could not be read.
    pub bad_tail: Option<(u64, RecordError)>,
}

/// Reads every record of `bytes` up to the first that cannot be read. Public for the fuzz
/// target; never panics, whatever the bytes.
pub fn scan_bytes(bytes: &[u8]) -> Scan {
    let mut scan = Scan::default();
    let mut at = 0usize;
    while at < bytes.len() {
        match record::decode(&bytes[at..]) {
            Ok((record, used)) => {
                scan.last_lsn = scan.last_lsn.max(record.lsn);
                scan.records.push(record);
                at += used;
            }
            Err(error) => {
                scan.bad_tail = Some(((bytes.len() - at) as u64, error));
                break;
            }
        }
    }
    scan.good_bytes = at as u64;
    scan
}

/// Reads a segment file and cuts off a torn or corrupt tail, so the next scan (and the
/// operator's tools) find a clean file.
pub fn scan_and_repair(path: &Path) -> io::Result<Scan> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let scan = scan_bytes(&bytes);
    if scan.bad_tail.is_some() {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(scan.good_bytes)?;
        file.sync_all()?;
    }
    Ok(scan)
}

/// The watermarks of the last checkpoint, `(0, 0)` when there is none or it is unreadable
/// (which only makes the replay longer, never shorter).
pub fn read_checkpoint(dir: &Path) -> (u64, u64) {
    let Ok(text) = fs::read_to_string(dir.join(CHECKPOINT)) else {
        return (0, 0);
    };
    let mut numbers = text.split_whitespace().map(str::parse::<u64>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(raw)), Some(Ok(rollup))) => (raw, rollup),
        _ => {
            log::warn!("The WAL checkpoint is unreadable; replaying every segment.");
            (0, 0)
        }
    }
}

/// Replaces the checkpoint atomically (write, then rename). Not fsynced: a checkpoint lost
/// with a power cut only makes the next replay start earlier.
pub fn write_checkpoint(dir: &Path, raw: u64, rollup: u64) -> io::Result<()> {
    let temporary = dir.join("checkpoint.tmp");
    let mut file = File::create(&temporary)?;
    writeln!(file, "{raw} {rollup}")?;
    drop(file);
    fs::rename(temporary, dir.join(CHECKPOINT))
}

/// The log's id from `dir/ID`, made (16 random hex digits) when the file is missing.
pub fn read_or_create_id(dir: &Path) -> io::Result<String> {
    let path = dir.join("ID");
    if let Ok(text) = fs::read_to_string(&path) {
        let id = text.trim();
        if !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok(id.to_owned());
        }
    }
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    let id = format!("{:016x}", hasher.finish());
    let temporary = dir.join("ID.tmp");
    let mut file = File::create(&temporary)?;
    writeln!(file, "{id}")?;
    file.sync_all()?;
    drop(file);
    fs::rename(temporary, &path)?;
    sync_dir(dir)?;
    Ok(id)
}

/// Forces a directory entry (a new or deleted segment) to disk.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ChargePointId;

    fn two_records() -> Vec<u8> {
        let id = ChargePointId::parse("CP1").unwrap();
        let mut out = Vec::new();
        for lsn in [5, 6] {
            record::stamp(&record::encode(&id, &[], &[]), lsn, &mut out);
        }
        out
    }

    #[test]
    fn a_torn_tail_is_reported_and_cut_off() {
        let temporary = tempfile::tempdir().unwrap();
        let dir = temporary.path().to_path_buf();
        let path = path_for(&dir, 5);
        let mut bytes = two_records();
        let whole = bytes.len() as u64;
        bytes.extend_from_slice(&[9, 0, 0, 0, 1, 2]);
        fs::write(&path, &bytes).unwrap();
        let scan = scan_and_repair(&path).unwrap();
        assert_eq!(scan.records.len(), 2);
        assert_eq!(scan.last_lsn, 6);
        assert!(matches!(scan.bad_tail, Some((6, RecordError::Torn { .. }))));
        assert_eq!(fs::metadata(&path).unwrap().len(), whole);
        let again = scan_and_repair(&path).unwrap();
        assert!(again.bad_tail.is_none());
        assert_eq!(list(&dir).unwrap(), vec![(5, path)]);
    }

    #[test]
    fn the_checkpoint_round_trips_and_defaults_to_zero() {
        let temporary = tempfile::tempdir().unwrap();
        let dir = temporary.path();
        assert_eq!(read_checkpoint(dir), (0, 0));
        write_checkpoint(dir, 17, 12).unwrap();
        assert_eq!(read_checkpoint(dir), (17, 12));
        fs::write(dir.join(CHECKPOINT), "garbage").unwrap();
        assert_eq!(read_checkpoint(dir), (0, 0));
    }
}
