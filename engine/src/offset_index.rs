//! The sparse offset index of one segment (`.index`).
//!
//! File format, like Kafka's: a sequence of 8-byte entries, each `relative offset: u32` (offset
//! minus the segment's base offset) then `file position: u32` (byte position of a batch in the
//! `.log`), both big-endian, strictly increasing. An entry is added every
//! `log.index.interval.bytes` of log. Entries live in memory and are written out when the segment
//! rolls or the log closes cleanly; after an unclean stop the index of every recovered segment
//! is rebuilt from the log.

/// Bytes per entry.
pub const ENTRY_SIZE: usize = 8;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OffsetIndex {
    base_offset: i64,
    entries: Vec<(u32, u32)>,
}

impl OffsetIndex {
    pub fn new(base_offset: i64) -> OffsetIndex {
        OffsetIndex {
            base_offset,
            entries: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds an entry; offsets and positions must increase.
    pub fn append(&mut self, offset: i64, position: u32) {
        let relative = offset - self.base_offset;
        assert!(
            (0..=i64::from(u32::MAX)).contains(&relative),
            "offset {offset} outside segment based at {}",
            self.base_offset
        );
        if let Some(&(r, p)) = self.entries.last() {
            assert!(
                relative as u32 > r && position > p,
                "index entries must increase: last ({r}, {p}), new ({relative}, {position})"
            );
        }
        self.entries.push((relative as u32, position));
    }

    /// The greatest entry at or below `offset`, as (absolute offset, position); the segment start
    /// when there is none.
    pub fn lookup(&self, offset: i64) -> (i64, u32) {
        let relative = offset - self.base_offset;
        if relative < 0 {
            return (self.base_offset, 0);
        }
        let i = self
            .entries
            .partition_point(|&(r, _)| i64::from(r) <= relative);
        if i == 0 {
            (self.base_offset, 0)
        } else {
            let (r, p) = self.entries[i - 1];
            (self.base_offset + i64::from(r), p)
        }
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<(i64, u32)> {
        self.entries
            .last()
            .map(|&(r, p)| (self.base_offset + i64::from(r), p))
    }

    /// Drops entries at or above `offset` (used when the log is truncated).
    pub fn truncate_to(&mut self, offset: i64) {
        let relative = offset - self.base_offset;
        let keep = self
            .entries
            .partition_point(|&(r, _)| i64::from(r) < relative);
        self.entries.truncate(keep);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_SIZE);
        for &(r, p) in &self.entries {
            out.extend_from_slice(&r.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        out
    }

    /// Loads an index file's bytes; refuses (with the reason) anything not increasing or pointing
    /// past `log_size`, so the caller rebuilds the index instead.
    pub fn from_bytes(
        base_offset: i64,
        bytes: &[u8],
        log_size: u64,
    ) -> Result<OffsetIndex, String> {
        if !bytes.len().is_multiple_of(ENTRY_SIZE) {
            return Err(format!(
                "size {} is not a multiple of {ENTRY_SIZE}",
                bytes.len()
            ));
        }
        let mut index = OffsetIndex::new(base_offset);
        for (i, e) in bytes.chunks_exact(ENTRY_SIZE).enumerate() {
            let r = u32::from_be_bytes(e[0..4].try_into().expect("4 bytes"));
            let p = u32::from_be_bytes(e[4..8].try_into().expect("4 bytes"));
            if u64::from(p) >= log_size {
                return Err(format!(
                    "entry {i} points at {p}, past the log's {log_size} bytes"
                ));
            }
            if let Some(&(lr, lp)) = index.entries.last() {
                if r <= lr || p <= lp {
                    return Err(format!("entry {i} does not increase"));
                }
            }
            index.entries.push((r, p));
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_greatest_entry_at_or_below() {
        let mut idx = OffsetIndex::new(100);
        idx.append(110, 4096);
        idx.append(130, 8192);
        assert_eq!(idx.lookup(99), (100, 0));
        assert_eq!(idx.lookup(100), (100, 0));
        assert_eq!(idx.lookup(109), (100, 0));
        assert_eq!(idx.lookup(110), (110, 4096));
        assert_eq!(idx.lookup(129), (110, 4096));
        assert_eq!(idx.lookup(1000), (130, 8192));
    }

    #[test]
    fn round_trips_through_bytes_and_rejects_garbage() {
        let mut idx = OffsetIndex::new(5);
        idx.append(6, 10);
        idx.append(9, 20);
        let b = idx.to_bytes();
        assert_eq!(OffsetIndex::from_bytes(5, &b, 100).unwrap(), idx);
        assert!(OffsetIndex::from_bytes(5, &b[..7], 100).is_err());
        assert!(OffsetIndex::from_bytes(5, &b, 15).is_err());
        let mut swapped = b[8..].to_vec();
        swapped.extend_from_slice(&b[..8]);
        assert!(OffsetIndex::from_bytes(5, &swapped, 100).is_err());
    }

    #[test]
    fn truncate_drops_entries_at_and_above() {
        let mut idx = OffsetIndex::new(0);
        idx.append(10, 100);
        idx.append(20, 200);
        idx.truncate_to(20);
        assert_eq!(idx.last(), Some((10, 100)));
    }

    #[test]
    #[should_panic(expected = "must increase")]
    fn non_increasing_append_panics() {
        let mut idx = OffsetIndex::new(0);
        idx.append(10, 100);
        idx.append(10, 200);
    }
}
