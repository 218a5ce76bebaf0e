//! Idempotent-producer state: per producer id, its epoch, last sequence and the last few batches,
//! so a retried batch is answered with its first offsets and a gap or a stale epoch is refused.

use crate::error::BatchError;
use ringlet_format::batch;
use std::collections::HashMap;

/// Idempotent-producer state of one producer on this partition.
#[derive(Clone, Debug)]
pub(super) struct ProducerState {
    epoch: i16,
    last_sequence: i32,
    /// The largest timestamp of the producer's newest batch (DescribeProducers).
    last_timestamp: i64,
    /// The last few batches: (first sequence, last sequence, base offset, last offset).
    recent: std::collections::VecDeque<(i32, i32, i64, i64)>,
}

/// One producer as DescribeProducers shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// First offset of its open transaction here, or -1.
    pub txn_start_offset: i64,
}

impl ProducerState {
    pub(super) fn info(&self, producer_id: i64, txn_start_offset: i64) -> ProducerInfo {
        ProducerInfo {
            producer_id,
            epoch: self.epoch,
            last_sequence: self.last_sequence,
            last_timestamp: self.last_timestamp,
            txn_start_offset,
        }
    }

    /// The producer as a snapshot keeps it: its newest batch only (Kafka's layout).
    pub(super) fn snapshot_entry(
        &self,
        producer_id: i64,
        txn_first_offset: i64,
    ) -> super::snapshot::Entry {
        let (last_offset, offset_delta) = self
            .recent
            .back()
            .map_or((-1, 0), |r| (r.3, (r.3 - r.2) as i32));
        super::snapshot::Entry {
            producer_id,
            epoch: self.epoch,
            last_sequence: self.last_sequence,
            last_offset,
            offset_delta,
            timestamp: self.last_timestamp,
            txn_first_offset,
        }
    }

    pub(super) fn from_snapshot(e: &super::snapshot::Entry) -> ProducerState {
        let mut recent = std::collections::VecDeque::new();
        if e.last_offset >= 0 && e.last_sequence >= 0 {
            recent.push_back((
                e.last_sequence.wrapping_sub(e.offset_delta),
                e.last_sequence,
                e.last_offset - i64::from(e.offset_delta),
                e.last_offset,
            ));
        }
        ProducerState {
            epoch: e.epoch,
            last_sequence: e.last_sequence,
            last_timestamp: e.timestamp,
            recent,
        }
    }

    /// Adds batches older than those remembered (ascending, read from before a snapshot) to the
    /// recent ones, for duplicate detection: same epoch only, the newest few kept.
    pub(super) fn remember_older(&mut self, headers: &[batch::BatchHeader]) {
        let oldest = self.recent.front().map_or(i64::MAX, |r| r.2);
        let mut older: Vec<(i32, i32, i64, i64)> = headers
            .iter()
            .filter(|h| h.producer_epoch == self.epoch && h.base_sequence >= 0)
            .filter(|h| h.last_offset() < oldest)
            .map(|h| {
                let last = h.base_sequence.wrapping_add(h.last_offset_delta);
                (h.base_sequence, last, h.base_offset, h.last_offset())
            })
            .collect();
        let room = PRODUCER_RECENT_BATCHES.saturating_sub(self.recent.len());
        older.drain(..older.len().saturating_sub(room));
        for r in older.into_iter().rev() {
            self.recent.push_front(r);
        }
    }

    pub(super) fn epoch(&self) -> i16 {
        self.epoch
    }

    /// The last offset of the producer's newest batch in the log.
    pub(super) fn last_offset(&self) -> Option<i64> {
        self.recent.back().map(|r| r.3)
    }
}

/// Batches remembered per producer for duplicate detection (Kafka keeps 5, matching
/// `max.in.flight.requests.per.connection` <= 5 for idempotent producers).
const PRODUCER_RECENT_BATCHES: usize = 5;

/// Bytes at the end of the log read at start-up to rebuild idempotent-producer state. Kafka
/// keeps producer-state snapshots; Ringlet rebuilds from the log's tail instead, because what
/// the state is for after a restart is recognising the retries of the last few in-flight batches,
/// which are always at the end of the log.
pub(super) const PRODUCER_STATE_WINDOW: u64 = 64 << 20;

/// Bytes before a producer-state snapshot read at start-up for the producers' last few batches
/// (the snapshot keeps one per producer).
pub(super) const RECENT_WINDOW: u64 = 4 << 20;

/// Records a batch of an idempotent producer: its epoch, last sequence, and recent batches.
pub(super) fn note_producer_batch(
    producers: &mut HashMap<i64, ProducerState>,
    h: &batch::BatchHeader,
    base: i64,
    last: i64,
) {
    if h.is_control() && h.producer_id >= 0 {
        // A transaction marker carries the coordinator's view of the producer's epoch: an older
        // epoch (a fenced zombie) is refused from here on, and the new epoch starts at sequence 0.
        let st = producers
            .entry(h.producer_id)
            .or_insert_with(|| ProducerState {
                epoch: h.producer_epoch,
                last_sequence: -1,
                last_timestamp: -1,
                recent: std::collections::VecDeque::new(),
            });
        if h.producer_epoch > st.epoch {
            st.epoch = h.producer_epoch;
            st.last_sequence = -1;
            st.recent.clear();
        }
        return;
    }
    if h.producer_id < 0 || h.base_sequence < 0 {
        return;
    }
    let st = producers
        .entry(h.producer_id)
        .or_insert_with(|| ProducerState {
            epoch: h.producer_epoch,
            last_sequence: -1,
            last_timestamp: -1,
            recent: std::collections::VecDeque::new(),
        });
    if st.epoch != h.producer_epoch {
        st.epoch = h.producer_epoch;
        st.recent.clear();
    }
    st.last_sequence = h.base_sequence.wrapping_add(h.last_offset_delta);
    st.last_timestamp = h.max_timestamp;
    if st.recent.len() == PRODUCER_RECENT_BATCHES {
        st.recent.pop_front();
    }
    st.recent
        .push_back((h.base_sequence, st.last_sequence, base, last));
}

/// Checks a request's idempotent batches against the producers' state: a stale epoch or a
/// sequence gap is refused; a request that is one retried batch answers `Some((base, last))`,
/// the offsets it got the first time.
pub(super) fn check_sequences(
    producers: &HashMap<i64, ProducerState>,
    headers: &[batch::BatchHeader],
) -> Result<Option<(i64, i64)>, BatchError> {
    for h in headers {
        if h.producer_id < 0 || h.base_sequence < 0 {
            continue;
        }
        let Some(st) = producers.get(&h.producer_id) else {
            continue;
        };
        if h.producer_epoch < st.epoch {
            return Err(BatchError::InvalidProducerEpoch {
                producer_id: h.producer_id,
                epoch: h.producer_epoch,
                current_epoch: st.epoch,
            });
        }
        if h.producer_epoch != st.epoch {
            continue;
        }
        let last_seq = h.base_sequence.wrapping_add(h.last_offset_delta);
        if let Some(&(_, _, base, last)) = st
            .recent
            .iter()
            .find(|r| r.0 == h.base_sequence && r.1 == last_seq)
        {
            if headers.len() == 1 {
                return Ok(Some((base, last)));
            }
        }
        if h.base_sequence != st.last_sequence.wrapping_add(1) {
            return Err(BatchError::OutOfOrderSequence {
                producer_id: h.producer_id,
                sequence: h.base_sequence,
                last_sequence: st.last_sequence,
            });
        }
    }
    Ok(None)
}
