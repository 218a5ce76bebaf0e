//! The log of one partition: an ordered set of segments and the offsets that describe it.
//!
//! Offsets kept distinct, always in this order (checked by [`PartitionLog::check_invariants`]):
//!
//! ```text
//! log_start_offset <= flushed_offset <= written_offset (= log end offset) <= appended_offset
//!                     high_watermark  <= written_offset
//! ```
//!
//! * `appended_offset`: offsets handed out to batches accepted for the in-flight group write.
//! * `written_offset`: the log end offset; everything below it is in the page cache and readable.
//! * `flushed_offset`: everything below it has been covered by an fdatasync.
//! * `high_watermark`: what consumers may read. On a single broker it follows `written_offset`;
//!   replication will hold it back to what every in-sync replica has.
//!
//! This type is synchronous and does no I/O on the append path: [`crate::partition::Partition`]
//! drives it (prepare a group, write it through the reactor, commit it). Opening, rolling, retention
//! and truncation use plain file calls; they run at start-up or once per segment.
//!
//! The type's methods are grouped by Kafka's concepts, one file each: [`recovery`] (opening a
//! log after a clean or unclean shutdown), [`producer_state`] (idempotent producers),
//! [`epoch_cache`] (the leader-epoch cache), [`append`] (preparing, writing and rolling),
//! [`read`] (the high watermark and where reads start), [`retention`] (retention and
//! truncation, DeleteRecords), [`compaction`] (the log's side of the cleaner), [`txn`] (open
//! and aborted transactions, the last stable offset); every small
//! file a log keeps goes through [`checkpoint`].

mod append;
pub mod checkpoint;
mod compaction;
mod epoch_cache;
mod producer_state;
mod read;
mod recovery;
mod retention;
mod snapshot;
mod txn;

use crate::config::LogConfig;
use crate::error::LogError;
use crate::segment::{BatchMeta, Segment};
use bytes::Bytes;
pub use compaction::{CleanPlan, CleanedGroup, SourceSegment, CLEANER_CHECKPOINT_FILE};
pub use producer_state::ProducerInfo;
use producer_state::ProducerState;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::rc::Rc;
pub use txn::AbortedTxn;

/// Name of the file holding the offset below which every segment is known to be flushed.
pub const RECOVERY_POINT_FILE: &str = "recovery-point";
/// Name of the file holding the partition's leader epoch.
pub const LEADER_EPOCH_FILE: &str = "leader-epoch";

/// Name of the leader-epoch cache: `(epoch, start offset)` pairs, Kafka's format (a version line,
/// a count line, then `epoch offset` lines).
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// Name of the file holding the log start offset DeleteRecords set (Kafka's
/// `log-start-offset-checkpoint`, kept per partition as Ringlet's other checkpoints are).
pub const LOG_START_OFFSET_FILE: &str = "log-start-offset-checkpoint";

/// Name of the file holding a replica's checkpointed high watermark.
pub const HIGH_WATERMARK_FILE: &str = "high-watermark";

/// Bytes of each batch the broker rewrites: baseOffset, batchLength (unchanged), leader epoch.
const PREFIX: usize = 16;

/// One producer request's record set, validated and with offsets assigned, ready to write.
#[derive(Debug)]
pub struct PreparedAppend {
    /// Buffers to write, in order: for each batch a 16-byte prefix the broker owns (baseOffset,
    /// batchLength, partitionLeaderEpoch), then the rest of it as the producer sent it.
    pub bufs: Vec<Bytes>,
    pub batches: Vec<BatchMeta>,
    pub base_offset: i64,
    pub last_offset: i64,
    pub bytes: u64,
    pub records: u64,
    /// `LogAppendTime` stamped on the batches, or -1.
    pub log_append_time: i64,
    /// Leader epochs first seen in a replicated append: `(epoch, start offset)`.
    pub new_epochs: Vec<(i32, i64)>,
}

/// Where a direct-mode group write goes: the active segment's `O_DIRECT` descriptor, its
/// buffered one (for reading back the partial block at the end), its base and its size.
#[derive(Clone, Debug)]
pub struct DirectTarget {
    pub direct: Rc<File>,
    pub file: Rc<File>,
    pub segment_base: i64,
    pub position: u64,
}

/// What a producer learns about its append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

/// Where a read starts: a file, a position to scan from, and the bound of readable bytes.
#[derive(Clone, Debug)]
pub struct ReadPlan {
    pub segment_base: i64,
    pub file: Rc<File>,
    pub path: PathBuf,
    pub scan_position: u64,
    pub scan_offset: i64,
    pub end_position: u64,
}

pub struct PartitionLog {
    dir: PathBuf,
    producers: std::collections::HashMap<i64, ProducerState>,
    /// Open, completing and aborted transactions (KIP-98).
    txns: txn::Txns,
    pub config: LogConfig,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    appended_offset: i64,
    written_offset: i64,
    flushed_offset: i64,
    high_watermark: i64,
    leader_epoch: i32,
    /// Leader-epoch cache: the first offset written in each leader epoch, ascending.
    epochs: Vec<(i32, i64)>,
    /// Replicated partitions hold the high watermark back to what the in-sync replicas have; a
    /// single broker's follows the log end.
    replicated: bool,
    /// Ends of recently written batches above the high watermark: `(next offset, segment base,
    /// end position)`, so the high watermark's file position is known without reading the file.
    batch_ends: std::collections::VecDeque<(i64, i64, u64)>,
    /// File position of the high watermark: `(segment base, position)`.
    hw_position: (i64, u64),
    unflushed_messages: u64,
    last_flush_ms: i64,
    offline: bool,
    /// The file system refused `O_DIRECT`: this log writes through the page cache.
    direct_unsupported: bool,
}

impl PartitionLog {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The log end offset: one past the last written (readable) record.
    pub fn log_end_offset(&self) -> i64 {
        self.written_offset
    }

    pub fn appended_offset(&self) -> i64 {
        self.appended_offset
    }

    pub fn flushed_offset(&self) -> i64 {
        self.flushed_offset
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn is_offline(&self) -> bool {
        self.offline
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Sum of segment sizes, in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }

    /// `(log path, size, flushed size)` of every segment, oldest first (for crash simulation).
    pub fn segment_files(&self) -> Vec<(PathBuf, u64, u64)> {
        self.segments
            .values()
            .map(|s| (s.log_path.clone(), s.size, s.flushed_size))
            .collect()
    }

    pub fn active(&self) -> &Segment {
        self.segments
            .last_key_value()
            .expect("a log has an active segment")
            .1
    }

    pub(super) fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_entry()
            .expect("a log has an active segment")
            .into_mut()
    }

    /// Whether group writes go to the device directly (`O_DIRECT`) rather than through the page
    /// cache.
    pub fn writes_direct(&self) -> bool {
        self.config.direct_io && !self.direct_unsupported
    }

    /// Asserts the offset order; prints every offset when it trips.
    pub fn check_invariants(&self) {
        let ok = self.log_start_offset <= self.flushed_offset.max(self.log_start_offset)
            && self.flushed_offset <= self.written_offset
            && self.written_offset <= self.appended_offset
            && self.high_watermark <= self.written_offset
            && self.log_start_offset <= self.high_watermark;
        assert!(
            ok,
            "offset order broken in {}: log_start {} flushed {} written {} appended {} high_watermark {}",
            self.dir.display(),
            self.log_start_offset,
            self.flushed_offset,
            self.written_offset,
            self.appended_offset,
            self.high_watermark
        );
    }

    /// A failed fdatasync: what was written cannot be trusted to be durable, and the page cache
    /// state is unknown, so the log goes offline until a restart recovers it.
    pub fn fail_flush(&mut self) {
        self.offline = true;
    }

    /// Whether the flush policy asks for an fdatasync now.
    pub fn should_flush(&self, now_ms: i64) -> bool {
        self.written_offset > self.flushed_offset
            && (self.unflushed_messages >= self.config.flush_interval_messages
                || now_ms - self.last_flush_ms >= self.config.flush_interval_ms)
    }

    /// Records a successful fdatasync of the active segment covering everything up to `offset`.
    pub fn mark_flushed(&mut self, offset: i64, size: u64, now_ms: i64) {
        assert!(offset <= self.written_offset);
        if offset > self.flushed_offset {
            self.flushed_offset = offset;
        }
        let seg = self.active_mut();
        seg.flushed_size = seg.flushed_size.max(size);
        self.unflushed_messages = 0;
        self.last_flush_ms = now_ms;
        self.write_txn_entries();
        self.check_invariants();
    }

    /// Writes the active segment's indexes and fsyncs it: the clean-shutdown path.
    pub fn close(&mut self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        let preallocated = self.config.preallocate;
        self.active_mut().end_active(preallocated)?;
        let a = self.active();
        crate::runtime::fs::sync_data(&a.file).map_err(|e| LogError::io(&a.log_path, e))?;
        a.write_indexes(&dir)?;
        let end = self.written_offset;
        self.flushed_offset = end;
        let base = self.active().base_offset;
        self.write_recovery_point(base)?;
        // The next start reads this instead of scanning the log's tail.
        self.write_producer_snapshot(end);
        Ok(())
    }

    /// Deletes every file of this log (topic deletion).
    pub fn delete(self) -> Result<(), LogError> {
        crate::runtime::fs::remove_dir_all(&self.dir).map_err(|e| LogError::io(&self.dir, e))
    }
}
