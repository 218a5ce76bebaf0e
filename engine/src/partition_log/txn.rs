//! Transactions on one partition's log (KIP-98): which producers have a transaction open here
//! and from which offset, which completed transactions are still unstable (their marker not yet
//! below the high watermark), and the aborted ones a `read_committed` fetch must be told about.
//!
//! The last stable offset (LSO) is the smaller of the high watermark and the first offset of any
//! unstable transaction: `read_committed` consumers read up to it. Aborted transactions are kept
//! in memory, ascending by marker offset, and on disk in Kafka's aborted-transaction index: one
//! `<base>.txnindex` per segment holding the entries whose abort marker is in that segment, 34
//! bytes each (version int16 = 0, producer id, first offset, last offset, last stable offset;
//! big-endian). An entry is appended once its marker is written; a crash in between loses no
//! entry, since opening the log re-derives entries from the markers in its tail.

use super::PartitionLog;
use crate::error::LogError;
use crate::segment::file_path;
use ringlet_format::batch::BatchHeader;
use ringlet_format::control::{marker_of, Marker};
use std::collections::HashMap;
use std::io::Write;

/// One aborted transaction, as Kafka's index and Fetch responses describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the abort marker.
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

const ENTRY: usize = 34;

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY] {
        let mut b = [0u8; ENTRY];
        b[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        b[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        b[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        b[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<AbortedTxn> {
        let i = |r: std::ops::Range<usize>| i64::from_be_bytes(b[r].try_into().expect("8 bytes"));
        (b.len() == ENTRY && b[0..2] == [0, 0]).then(|| AbortedTxn {
            producer_id: i(2..10),
            first_offset: i(10..18),
            last_offset: i(18..26),
            last_stable_offset: i(26..34),
        })
    }
}

/// The transaction state of one partition.
#[derive(Debug, Default)]
pub(super) struct Txns {
    /// Producer id -> first offset of its open transaction here.
    ongoing: HashMap<i64, i64>,
    /// Completed transactions whose marker may still be above the high watermark:
    /// `(first offset, marker offset)`.
    completing: Vec<(i64, i64)>,
    /// Aborted transactions, ascending by marker offset.
    aborted: Vec<AbortedTxn>,
    /// Aborted entries not yet in their segment's `.txnindex`.
    unwritten: Vec<AbortedTxn>,
}

impl Txns {
    /// Takes a batch given offsets `base..=last` into account; `bytes` is the whole batch (read
    /// for control batches only).
    pub(super) fn note(&mut self, h: &BatchHeader, bytes: &[u8], base: i64) {
        if !h.is_transactional() || h.producer_id < 0 {
            return;
        }
        if !h.is_control() {
            self.ongoing.entry(h.producer_id).or_insert(base);
            return;
        }
        let Some(marker) = marker_of(h, bytes) else {
            return;
        };
        // A marker for a transaction with no data here (the coordinator writes one to every
        // partition it was told of) completes nothing.
        let Some(first) = self.ongoing.remove(&h.producer_id) else {
            return;
        };
        self.completing.push((first, base));
        if marker == Marker::Abort && !self.aborted.iter().any(|a| a.last_offset == base) {
            let lso = self.ongoing.values().copied().min().unwrap_or(base + 1);
            let entry = AbortedTxn {
                producer_id: h.producer_id,
                first_offset: first,
                last_offset: base,
                last_stable_offset: lso,
            };
            self.aborted.push(entry);
            self.unwritten.push(entry);
        }
    }

    /// The first offset of a transaction not yet stable at high watermark `hw`.
    fn first_unstable(&self, hw: i64) -> Option<i64> {
        let open = self.ongoing.values().copied().min();
        let completing = self
            .completing
            .iter()
            .filter(|c| c.1 >= hw)
            .map(|c| c.0)
            .min();
        match (open, completing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub(super) fn last_stable_offset(&self, hw: i64) -> i64 {
        self.first_unstable(hw).map_or(hw, |f| f.min(hw))
    }

    /// Forgets completed transactions whose markers are below the high watermark.
    fn settle(&mut self, hw: i64) {
        self.completing.retain(|c| c.1 >= hw);
    }

    /// Aborted transactions with data in `[from, upto)`.
    pub(super) fn aborted_in(&self, from: i64, upto: i64) -> Vec<AbortedTxn> {
        self.aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset < upto)
            .copied()
            .collect()
    }

    pub(super) fn aborted(&self) -> &[AbortedTxn] {
        &self.aborted
    }

    pub(super) fn open_start(&self, producer_id: i64) -> Option<i64> {
        self.ongoing.get(&producer_id).copied()
    }

    /// A transaction open from `first` (read from a producer-state snapshot).
    pub(super) fn set_open(&mut self, producer_id: i64, first: i64) {
        self.ongoing.insert(producer_id, first);
    }

    pub(super) fn open_count(&self) -> usize {
        self.ongoing.len()
    }

    /// Forgets open and completing transactions (their state is rebuilt from the log's tail)
    /// and aborted entries at or past `end`.
    pub(super) fn reset_to(&mut self, end: i64) {
        self.ongoing.clear();
        self.completing.clear();
        self.aborted.retain(|a| a.last_offset < end);
        self.unwritten.retain(|a| a.last_offset < end);
    }

    /// Drops aborted entries wholly below the log start.
    pub(super) fn forget_below(&mut self, log_start: i64) {
        self.aborted.retain(|a| a.last_offset >= log_start);
    }

    fn load(&mut self, entries: Vec<AbortedTxn>) {
        self.aborted = entries;
        self.aborted.sort_by_key(|a| a.last_offset);
        self.aborted.dedup_by_key(|a| a.last_offset);
    }
}

impl PartitionLog {
    /// The last stable offset: what `read_committed` consumers may read up to.
    pub fn last_stable_offset(&mut self) -> i64 {
        let hw = self.high_watermark;
        self.txns.settle(hw);
        self.txns.last_stable_offset(hw)
    }

    /// [`PartitionLog::last_stable_offset`] without settling completed transactions.
    pub(super) fn stable_end(&self) -> i64 {
        self.txns.last_stable_offset(self.high_watermark)
    }

    /// Aborted transactions with data in `[from, upto)`, for a `read_committed` fetch.
    pub fn aborted_transactions(&self, from: i64, upto: i64) -> Vec<AbortedTxn> {
        self.txns.aborted_in(from, upto)
    }

    /// Whether producer `producer_id` has a transaction open here under epoch `epoch` (its
    /// batches need no check with the coordinator, KIP-890).
    pub fn in_transaction(&self, producer_id: i64, epoch: i16) -> bool {
        self.txns.open_start(producer_id).is_some()
            && self
                .producers
                .get(&producer_id)
                .is_some_and(|st| st.epoch() == epoch)
    }

    /// Transactions open on this partition now.
    pub fn open_transactions(&self) -> usize {
        self.txns.open_count()
    }

    /// The producers this partition knows (from its log's tail), for DescribeProducers.
    pub fn producers(&self) -> Vec<super::ProducerInfo> {
        let mut v: Vec<_> = self
            .producers
            .iter()
            .map(|(&pid, st)| st.info(pid, self.txns.open_start(pid).unwrap_or(-1)))
            .collect();
        v.sort_by_key(|p| p.producer_id);
        v
    }

    /// Every aborted transaction still in the log (the cleaner removes their records).
    pub fn aborted_all(&self) -> Vec<AbortedTxn> {
        self.txns.aborted().to_vec()
    }

    /// Reads every segment's `.txnindex` (at open), dropping entries past the log end.
    pub(super) fn load_txn_indexes(&mut self) {
        let mut entries = Vec::new();
        for &base in self.segments.keys() {
            let path = file_path(&self.dir, base, "txnindex");
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            entries.extend(bytes.chunks(ENTRY).filter_map(AbortedTxn::decode));
        }
        let end = self.written_offset;
        entries.retain(|a| a.last_offset < end && a.last_offset >= self.log_start_offset);
        self.txns.load(entries);
    }

    /// Appends the aborted entries whose markers are written to their segments' `.txnindex`
    /// files (through the page cache, as the log itself; once per aborted transaction, never
    /// per record). A failure leaves them pending for the next write or flush.
    pub(super) fn write_txn_entries(&mut self) {
        if self.txns.unwritten.is_empty() {
            return;
        }
        let written = self.written_offset;
        let mut left = Vec::new();
        for a in std::mem::take(&mut self.txns.unwritten) {
            let seg = self
                .segments
                .range(..=a.last_offset)
                .next_back()
                .map(|(&b, _)| b);
            let Some(base) = seg.filter(|_| a.last_offset < written) else {
                left.push(a);
                continue;
            };
            let path = file_path(&self.dir, base, "txnindex");
            let res = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .and_then(|mut f| f.write_all(&a.encode()));
            if let Err(e) = res {
                tracing::warn!(path = %path.display(), error = %e, "cannot append to the aborted-transaction index; retried at the next flush");
                left.push(a);
            }
        }
        self.txns.unwritten = left;
    }

    /// Reads a control batch's bytes during a header walk (recovery, rebuilds).
    pub(super) fn read_batch_at(
        &self,
        base: i64,
        pos: u64,
        size: usize,
    ) -> Result<Vec<u8>, LogError> {
        let seg = &self.segments[&base];
        let mut buf = vec![0u8; size];
        std::os::unix::fs::FileExt::read_exact_at(&*seg.file, &mut buf, pos)
            .map_err(|e| LogError::io(&seg.log_path, e))?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip() {
        let a = AbortedTxn {
            producer_id: 9,
            first_offset: 10,
            last_offset: 20,
            last_stable_offset: 21,
        };
        assert_eq!(AbortedTxn::decode(&a.encode()), Some(a));
    }
}
