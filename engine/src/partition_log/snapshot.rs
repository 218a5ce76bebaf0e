//! Producer-state snapshots in Kafka's format: `<offset>.snapshot` holds every producer's state as
//! of log offset `offset` (epoch, last sequence, its last batch, the first offset of its open
//! transaction), so that opening the log reads the newest snapshot and scans only what follows it
//! instead of the log's tail. One is written when a segment rolls (at the new segment's base) and
//! at a clean shutdown (at the log end, so the next start scans nothing), fsynced before it is
//! renamed into place. The two newest are kept; a snapshot past the log end (a truncation) or below the log start is ignored and removed.
//!
//! Layout (Kafka's ProducerStateManager, version 1, big-endian): version int16, CRC-32C uint32 of
//! everything after it, then an int32 count of 46-byte entries: producer id int64, epoch int16,
//! last sequence int32, last offset int64, offset delta int32, timestamp int64, coordinator epoch
//! int32, current transaction's first offset int64 (-1: none).

use super::producer_state::ProducerState;
use super::PartitionLog;
use crate::runtime::fs;
use crate::segment::file_path;
use std::collections::HashMap;

const VERSION: i16 = 1;
const ENTRY: usize = 46;
const KEEP: usize = 2;

/// One producer in a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_offset: i64,
    pub offset_delta: i32,
    pub timestamp: i64,
    pub txn_first_offset: i64,
}

pub(super) fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + entries.len() * ENTRY);
    body.extend_from_slice(&(entries.len() as i32).to_be_bytes());
    for e in entries {
        body.extend_from_slice(&e.producer_id.to_be_bytes());
        body.extend_from_slice(&e.epoch.to_be_bytes());
        body.extend_from_slice(&e.last_sequence.to_be_bytes());
        body.extend_from_slice(&e.last_offset.to_be_bytes());
        body.extend_from_slice(&e.offset_delta.to_be_bytes());
        body.extend_from_slice(&e.timestamp.to_be_bytes());
        body.extend_from_slice(&0i32.to_be_bytes()); // coordinator epoch
        body.extend_from_slice(&e.txn_first_offset.to_be_bytes());
    }
    let mut out = Vec::with_capacity(6 + body.len());
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// The entries of a snapshot file; `None` when it is torn, corrupt or of another version.
pub(super) fn decode(b: &[u8]) -> Option<Vec<Entry>> {
    let be = |r: std::ops::Range<usize>| b.get(r);
    let version = i16::from_be_bytes(be(0..2)?.try_into().ok()?);
    let crc = u32::from_be_bytes(be(2..6)?.try_into().ok()?);
    if version != VERSION || crc32c::crc32c(&b[6..]) != crc {
        return None;
    }
    let n = usize::try_from(i32::from_be_bytes(be(6..10)?.try_into().ok()?)).ok()?;
    if b.len() != 10 + n * ENTRY {
        return None;
    }
    let i64_at = |o: usize| i64::from_be_bytes(b[o..o + 8].try_into().expect("8 bytes"));
    let i32_at = |o: usize| i32::from_be_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    Some(
        (0..n)
            .map(|k| {
                let o = 10 + k * ENTRY;
                Entry {
                    producer_id: i64_at(o),
                    epoch: i16::from_be_bytes(b[o + 8..o + 10].try_into().expect("2 bytes")),
                    last_sequence: i32_at(o + 10),
                    last_offset: i64_at(o + 14),
                    offset_delta: i32_at(o + 22),
                    timestamp: i64_at(o + 26),
                    txn_first_offset: i64_at(o + 38),
                }
            })
            .collect(),
    )
}

impl PartitionLog {
    /// The offsets of this log's snapshot files, ascending.
    fn snapshot_offsets(&self) -> Vec<i64> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut v: Vec<i64> = dir
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".snapshot")?.parse().ok()
            })
            .collect();
        v.sort_unstable();
        v
    }

    /// Writes the producers' state as of `offset` (the log end: nothing is queued or being
    /// written) to `<offset>.snapshot`, then removes all but the newest snapshots. A failure is
    /// logged and harmless: the next start scans more of the log.
    pub(super) fn write_producer_snapshot(&self, offset: i64) {
        let mut entries: Vec<Entry> = self
            .producers
            .iter()
            .map(|(&pid, st)| st.snapshot_entry(pid, self.txns.open_start(pid).unwrap_or(-1)))
            .collect();
        entries.sort_by_key(|e| e.producer_id);
        let path = file_path(&self.dir, offset, "snapshot");
        let tmp = path.with_extension("snapshot.tmp");
        // Synced before the rename, through the shard's file layer (as the checkpoint files): a
        // power cut then leaves the old snapshot or the whole new one, never an empty file
        // under the new name (which recovery would ignore, scanning the log instead).
        let written = (|| {
            let mut f = fs::create(&tmp)?;
            fs::write_all(&mut f, &encode(&entries))?;
            fs::sync_data(&f)?;
            fs::rename(&tmp, &path)
        })();
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "writing a producer-state snapshot failed");
            return;
        }
        let all = self.snapshot_offsets();
        for old in all.iter().take(all.len().saturating_sub(KEEP)) {
            let _ = std::fs::remove_file(file_path(&self.dir, *old, "snapshot"));
        }
    }

    /// Loads the newest usable snapshot (at or below the log end, at or above the log start)
    /// into `producers` and the open transactions; its offset, from which the log is to be
    /// scanned. Snapshots past the log end are removed (their state is of a truncated log).
    pub(super) fn load_producer_snapshot(
        &mut self,
        producers: &mut HashMap<i64, ProducerState>,
    ) -> Option<i64> {
        for offset in self.snapshot_offsets().into_iter().rev() {
            let path = file_path(&self.dir, offset, "snapshot");
            if offset > self.written_offset {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if offset < self.log_start_offset {
                return None;
            }
            let Some(entries) = std::fs::read(&path).ok().and_then(|b| decode(&b)) else {
                tracing::warn!(path = %path.display(), "ignoring an unreadable producer-state snapshot");
                continue;
            };
            for e in entries {
                producers.insert(e.producer_id, ProducerState::from_snapshot(&e));
                if e.txn_first_offset >= 0 {
                    self.txns.set_open(e.producer_id, e.txn_first_offset);
                }
            }
            return Some(offset);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_corruption_is_refused() {
        let e = Entry {
            producer_id: 7,
            epoch: 3,
            last_sequence: 41,
            last_offset: 1000,
            offset_delta: 9,
            timestamp: 1_700_000_000_000,
            txn_first_offset: 990,
        };
        let bytes = encode(&[e]);
        assert_eq!(bytes.len(), 10 + ENTRY);
        assert_eq!(decode(&bytes), Some(vec![e]));
        let mut bad = bytes.clone();
        bad[20] ^= 1;
        assert_eq!(decode(&bad), None);
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
    }
}
