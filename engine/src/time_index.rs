//! The sparse time index of one segment (`.timeindex`).
//!
//! File format, like Kafka's: 12-byte entries, `timestamp: i64` then `relative offset: u32`,
//! big-endian. An entry `(t, o)` says: the batch starting at offset `o`, and every batch before
//! it in the segment, has its largest timestamp at most `t`. Entries are added with the offset
//! index entries, only when the segment's largest timestamp grew, so timestamps increase.

pub const ENTRY_SIZE: usize = 12;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeIndex {
    base_offset: i64,
    entries: Vec<(i64, u32)>,
}

impl TimeIndex {
    pub fn new(base_offset: i64) -> TimeIndex {
        TimeIndex {
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

    /// Records that batches up to the one at `offset` have timestamps at most `timestamp`.
    pub fn maybe_append(&mut self, timestamp: i64, offset: i64) {
        let relative = offset - self.base_offset;
        assert!((0..=i64::from(u32::MAX)).contains(&relative));
        match self.entries.last() {
            Some(&(t, r)) if timestamp <= t || relative as u32 <= r => {}
            _ => self.entries.push((timestamp, relative as u32)),
        }
    }

    /// The offset to start scanning from for the first batch with a timestamp at or after
    /// `timestamp`: the offset of the last entry whose timestamp is below it, or the base offset.
    pub fn lookup(&self, timestamp: i64) -> i64 {
        let i = self.entries.partition_point(|&(t, _)| t < timestamp);
        if i == 0 {
            self.base_offset
        } else {
            self.base_offset + i64::from(self.entries[i - 1].1)
        }
    }

    pub fn truncate_to(&mut self, offset: i64) {
        let relative = offset - self.base_offset;
        let keep = self
            .entries
            .partition_point(|&(_, r)| i64::from(r) < relative);
        self.entries.truncate(keep);
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_SIZE);
        for &(t, r) in &self.entries {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&r.to_be_bytes());
        }
        out
    }

    pub fn from_bytes(base_offset: i64, bytes: &[u8]) -> Result<TimeIndex, String> {
        if !bytes.len().is_multiple_of(ENTRY_SIZE) {
            return Err(format!(
                "size {} is not a multiple of {ENTRY_SIZE}",
                bytes.len()
            ));
        }
        let mut index = TimeIndex::new(base_offset);
        for (i, e) in bytes.chunks_exact(ENTRY_SIZE).enumerate() {
            let t = i64::from_be_bytes(e[0..8].try_into().expect("8 bytes"));
            let r = u32::from_be_bytes(e[8..12].try_into().expect("4 bytes"));
            if let Some(&(lt, lr)) = index.entries.last() {
                if t <= lt || r <= lr {
                    return Err(format!("entry {i} does not increase"));
                }
            }
            index.entries.push((t, r));
        }
        Ok(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_starts_before_the_first_later_timestamp() {
        let mut idx = TimeIndex::new(0);
        idx.maybe_append(100, 0);
        idx.maybe_append(200, 10);
        idx.maybe_append(150, 20); // not larger: ignored
        idx.maybe_append(300, 30);
        assert_eq!(idx.len(), 3);
        assert_eq!(idx.lookup(50), 0);
        assert_eq!(idx.lookup(100), 0);
        assert_eq!(idx.lookup(101), 0);
        assert_eq!(idx.lookup(250), 10);
        assert_eq!(idx.lookup(1000), 30);
        let b = idx.to_bytes();
        assert_eq!(TimeIndex::from_bytes(0, &b).unwrap(), idx);
        assert!(TimeIndex::from_bytes(0, &b[1..]).is_err());
    }
}
