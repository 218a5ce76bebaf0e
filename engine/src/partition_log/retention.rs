//! Removing data: whole segments past `retention.ms` or beyond `retention.bytes`, and truncation
//! to an offset for replication.

use super::checkpoint::write_i64;
use super::read::batch_boundary;
use super::PartitionLog;
use super::{CLEANER_CHECKPOINT_FILE, LOG_START_OFFSET_FILE};
use crate::error::LogError;
use crate::runtime::fs;
use crate::segment::{file_path, Segment};

impl PartitionLog {
    /// Deletes whole segments past `log.retention.ms` or beyond `log.retention.bytes` (never the
    /// active one) and advances `log_start_offset`. Returns how many were deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let mut deleted = 0;
        let mut total = self.size_bytes() as i64;
        while self.segments.len() > 1 {
            let (&base, seg) = self.segments.first_key_value().expect("more than one");
            let policy = self.config.delete;
            let too_old = policy
                && self.config.retention_ms >= 0
                && seg.max_timestamp >= 0
                && now_ms - seg.max_timestamp > self.config.retention_ms;
            let too_big = policy
                && self.config.retention_bytes >= 0
                && total - seg.size as i64 >= self.config.retention_bytes;
            // Wholly below the log start (DeleteRecords): whatever the policy, as Kafka.
            let next_base = *self
                .segments
                .range(base + 1..)
                .next()
                .expect("more than one")
                .0;
            let deleted_records = next_base <= self.log_start_offset;
            if !(too_old || too_big || deleted_records) {
                break;
            }
            // Files first, the log file last; the segment leaves the map (and the log start moves)
            // only once they are all gone. A failure leaves the log as it was, to retry at the
            // next check: never a log start behind a deleted segment, never a segment lost from
            // the map whose files come back at the next start.
            remove_segment_files(&self.dir, base)?;
            total -= seg.size as i64;
            let seg = self.segments.remove(&base).expect("present");
            self.advance_log_start();
            let reason = if deleted_records {
                "log start offset"
            } else if too_old {
                "retention.ms"
            } else {
                "retention.bytes"
            };
            tracing::info!(path = %seg.log_path.display(), reason, "deleted segment");
            deleted += 1;
        }
        self.advance_log_start();
        self.check_invariants();
        Ok(deleted)
    }

    /// Moves the log start up to the first segment still held.
    fn advance_log_start(&mut self) {
        let first = *self.segments.first_key_value().expect("active stays").0;
        self.log_start_offset = self.log_start_offset.max(first);
        self.txns.forget_below(self.log_start_offset);
        self.high_watermark = self.high_watermark.max(self.log_start_offset);
        self.flushed_offset = self
            .flushed_offset
            .max(self.log_start_offset)
            .min(self.written_offset);
    }

    /// DeleteRecords: moves the log start up to `offset` (-1: the high watermark), checkpoints
    /// it, and deletes the segments wholly below it. An offset past the high watermark is out of
    /// range, as in Kafka. Returns the new log start (Kafka's low watermark).
    pub fn delete_records_to(&mut self, offset: i64, now_ms: i64) -> Result<i64, LogError> {
        let offset = if offset == -1 {
            self.high_watermark
        } else {
            offset
        };
        if !self.config.delete {
            return Err(LogError::DeletePolicy);
        }
        if offset < 0 || offset > self.high_watermark {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.high_watermark,
            });
        }
        self.raise_log_start(offset, now_ms)?;
        Ok(self.log_start_offset)
    }

    /// A follower takes its leader's log start (DeleteRecords or retention there), up to its
    /// own high watermark.
    pub fn follow_log_start(&mut self, leader_log_start: i64, now_ms: i64) -> Result<(), LogError> {
        self.raise_log_start(leader_log_start.min(self.high_watermark), now_ms)
    }

    fn raise_log_start(&mut self, offset: i64, now_ms: i64) -> Result<(), LogError> {
        if offset > self.log_start_offset {
            write_i64(&self.dir.join(LOG_START_OFFSET_FILE), offset)?;
            self.log_start_offset = offset;
            tracing::info!(dir = %self.dir.display(), log_start_offset = offset, "log start offset moved");
            self.apply_retention(now_ms)?;
        }
        Ok(())
    }

    /// A follower whose leader's log starts past this log's end: everything goes and the log
    /// starts again, empty, at `offset` (Kafka's `truncateFullyAndStartAt`). Only between groups.
    pub fn reset_to(&mut self, offset: i64) -> Result<(), LogError> {
        assert_eq!(
            self.appended_offset, self.written_offset,
            "reset only between groups"
        );
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for &base in bases.iter().rev() {
            if let Err(e) = remove_segment_files(&self.dir, base) {
                self.offline = true;
                return Err(e);
            }
        }
        self.segments.clear();
        let seg = Segment::create(&self.dir, offset, crate::config::now_ms(), 0)?;
        self.segments.insert(offset, seg);
        write_i64(&self.dir.join(LOG_START_OFFSET_FILE), offset)?;
        write_i64(&self.dir.join(CLEANER_CHECKPOINT_FILE), offset)?;
        self.log_start_offset = offset;
        self.written_offset = offset;
        self.appended_offset = offset;
        self.flushed_offset = offset;
        self.high_watermark = offset;
        self.hw_position = (offset, 0);
        self.batch_ends.clear();
        self.epochs.clear();
        self.write_epochs()?;
        self.producers.clear();
        self.txns.reset_to(i64::MIN);
        self.write_recovery_point(offset)?;
        self.check_invariants();
        Ok(())
    }

    /// Removes every record at or above `offset` (a batch boundary), as replication's truncation
    /// to a leader's log end needs. Only between groups.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), LogError> {
        assert_eq!(
            self.appended_offset, self.written_offset,
            "truncate only between groups"
        );
        if offset >= self.written_offset {
            return Ok(());
        }
        let offset = offset.max(self.log_start_offset);
        // Whole segments past the offset: their files go first, newest first, and only then does
        // the log drop them, so what is left on disk is always a prefix of the log and nothing
        // past the truncation point can come back at the next start. A failure before any
        // segment went leaves the log as it was (the caller retries); one after takes the log
        // offline, since its newest segments are gone from disk but not from memory (appends
        // would land in an unlinked file). Reopening recovers from the prefix on disk.
        let later: Vec<i64> = self.segments.range(offset + 1..).map(|(&b, _)| b).collect();
        let later = &later[..later.len().min(self.segments.len() - 1)];
        for (i, &base) in later.iter().rev().enumerate() {
            if let Err(e) = remove_segment_files(&self.dir, base) {
                if i > 0 {
                    tracing::error!(dir = %self.dir.display(), error = %e, "truncation failed halfway; partition goes offline");
                    self.offline = true;
                }
                return Err(e);
            }
        }
        for base in later {
            self.segments.remove(base);
        }
        // Once later segments are gone the log's offsets no longer match its segments: a failure
        // cutting the new active one takes the log offline (reopening recovers what is on disk).
        let cut = batch_boundary(self.active(), offset)
            .and_then(|(cur, pos)| self.active_mut().truncate_to(cur, pos));
        if let Err(e) = cut {
            if !later.is_empty() {
                tracing::error!(dir = %self.dir.display(), error = %e, "truncation failed after removing segments; partition goes offline");
                self.offline = true;
            }
            return Err(e);
        }
        let seg = self.active_mut();
        let end = seg.next_offset.max(seg.base_offset);
        let (base, size) = (seg.base_offset, seg.size);
        self.written_offset = end;
        self.appended_offset = end;
        if self.high_watermark >= end {
            self.high_watermark = end;
            self.hw_position = (base, size);
        }
        self.batch_ends.retain(|&(next, _, _)| next <= end);
        if self.epochs.last().is_some_and(|e| e.1 >= end) {
            self.epochs.retain(|&(_, start)| start < end);
            self.write_epochs()?;
        }
        // Sequences of the batches cut off must not answer a producer's retry as duplicates: the
        // idempotent-producer state is rebuilt from what the log now holds.
        self.rebuild_producer_state()?;
        self.flushed_offset = self.flushed_offset.min(end);
        self.check_invariants();
        Ok(())
    }
}

/// Removes a segment's files, the log file last (an index left without its log is dropped at the
/// next start; a log left without its indexes is a segment whose indexes are rebuilt).
pub(super) fn remove_segment_files(dir: &std::path::Path, base: i64) -> Result<(), LogError> {
    for ext in ["txnindex", "timeindex", "index", "log"] {
        let p = file_path(dir, base, ext);
        if let Err(e) = fs::remove_file(&p) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(LogError::io(p, e));
            }
        }
    }
    Ok(())
}
