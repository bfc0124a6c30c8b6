//! LEB128 varints and zigzag mapping for the chunk codec.
//!
//! Small numbers dominate the raw-sample encoding (series indexes, timestamp deltas, value
//! deltas), so every integer is written in as few 7-bit groups as it needs. Reading never
//! panics: untrusted bytes from Redis yield `None` instead.

/// Appends `value` as an unsigned LEB128 varint (1 byte below 128, at most 10 bytes).
pub(crate) fn put_u64(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends a signed value via zigzag so that small negative deltas stay as short as positive ones.
pub(crate) fn put_i64(out: &mut Vec<u8>, value: i64) {
    put_u64(out, zigzag(value));
}

/// Maps signed to unsigned so that 0, -1, 1, -2, 2 … become 0, 1, 2, 3, 4 ….
pub(crate) fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

/// Inverse of [`zigzag`].
pub(crate) fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// A cursor over untrusted bytes; every read is bounds-checked and reports failure as `None`.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading at the first byte of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    /// Bytes consumed so far, for error offsets and framing.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet consumed; bounds pre-allocation from untrusted counts.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// Reads one byte.
    pub(crate) fn u8(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(byte)
    }

    /// Reads `len` raw bytes.
    pub(crate) fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(len)?;
        let slice = self.bytes.get(self.pos..end)?;
        self.pos = end;
        Some(slice)
    }

    /// Reads an unsigned varint; `None` if truncated or longer than 64 bits.
    pub(crate) fn u64(&mut self) -> Option<u64> {
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            let group = u64::from(byte & 0x7f);
            // The tenth byte may only contribute the single top bit.
            if shift == 63 && group > 1 {
                return None;
            }
            value |= group << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    /// Reads a zigzag varint.
    pub(crate) fn i64(&mut self) -> Option<i64> {
        self.u64().map(unzigzag)
    }

    /// Reads an unsigned varint that must fit a `usize` (lengths, counts, indexes).
    pub(crate) fn usize(&mut self) -> Option<usize> {
        usize::try_from(self.u64()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_at_the_edges() {
        let values = [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX,
        ];
        for value in values {
            let mut out = Vec::new();
            put_u64(&mut out, value);
            let mut reader = Reader::new(&out);
            assert_eq!(reader.u64(), Some(value));
            assert_eq!(reader.remaining(), 0);
        }
        for value in [0, -1, 1, -64, 64, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            put_i64(&mut out, value);
            assert_eq!(Reader::new(&out).i64(), Some(value));
        }
        let mut one = Vec::new();
        put_i64(&mut one, -1);
        assert_eq!(one, [1]);
    }

    #[test]
    fn malformed_varints_are_rejected() {
        assert_eq!(Reader::new(&[0x80]).u64(), None);
        assert_eq!(Reader::new(&[0xff; 11]).u64(), None);
        let mut too_big = vec![0xff; 9];
        too_big.push(0x02);
        assert_eq!(Reader::new(&too_big).u64(), None);
        assert_eq!(Reader::new(&[]).u8(), None);
        assert_eq!(Reader::new(&[1, 2]).take(3), None);
    }
}
