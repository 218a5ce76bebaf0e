//! Reading: the high watermark (held back on replicated logs) and its file position, where a
//! fetch starts, and timestamp lookups.

use super::checkpoint::{read_i64, write_i64};
use super::{PartitionLog, ReadPlan, HIGH_WATERMARK_FILE};
use crate::error::LogError;
use crate::segment::Segment;

impl PartitionLog {
    /// Makes this a replicated log: the high watermark starts at the checkpointed one (never past
    /// the log end) and from then on moves only through [`PartitionLog::raise_high_watermark`].
    pub fn set_replicated(&mut self) -> Result<(), LogError> {
        if self.replicated {
            return Ok(());
        }
        self.replicated = true;
        let hw = read_i64(&self.dir.join(HIGH_WATERMARK_FILE))
            .unwrap_or(self.log_start_offset)
            .clamp(self.log_start_offset, self.written_offset);
        self.high_watermark = hw;
        self.hw_position = self.position_of(hw)?;
        self.check_invariants();
        Ok(())
    }

    pub fn is_replicated(&self) -> bool {
        self.replicated
    }

    /// Raises the high watermark to `hw` (capped at the log end); never lowers it. Returns
    /// whether it moved.
    pub fn raise_high_watermark(&mut self, hw: i64) -> bool {
        let hw = hw.min(self.written_offset);
        if hw <= self.high_watermark {
            return false;
        }
        while let Some(&(next, _, _)) = self.batch_ends.front() {
            if next >= hw {
                break;
            }
            self.batch_ends.pop_front();
        }
        let pos = match self.batch_ends.front() {
            Some(&(next, base, pos)) if next == hw => Some((base, pos)),
            _ => None,
        };
        self.hw_position = match pos {
            Some(p) => p,
            None => match self.position_of(hw) {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "cannot locate the high watermark; partition goes offline");
                    self.offline = true;
                    return false;
                }
            },
        };
        self.high_watermark = hw;
        true
    }

    /// Writes the high watermark to its checkpoint file (replicated logs).
    pub fn checkpoint_high_watermark(&self) -> Result<(), LogError> {
        write_i64(&self.dir.join(HIGH_WATERMARK_FILE), self.high_watermark)
    }

    /// `(segment base, file position)` of the batch boundary at `offset` (the first batch at or
    /// past it), by the offset index and a scan of batch headers.
    pub(super) fn position_of(&self, offset: i64) -> Result<(i64, u64), LogError> {
        let seg = match self.segments.range(..=offset).next_back() {
            Some((_, s)) if s.next_offset >= offset => s,
            _ => self.active(),
        };
        if offset >= seg.next_offset {
            return Ok((seg.base_offset, seg.size));
        }
        Ok((seg.base_offset, batch_boundary(seg, offset)?.1))
    }

    /// Finds where to read `fetch_offset`. `Ok(None)` means there is nothing at or past it yet.
    pub fn plan_read(&self, fetch_offset: i64) -> Result<Option<ReadPlan>, LogError> {
        self.plan_read_upto(fetch_offset, false)
    }

    /// As [`PartitionLog::plan_read`]; a consumer (`to_log_end` false) reads up to the high
    /// watermark, a follower up to the log end. Offsets between the two are empty for a consumer,
    /// not out of range.
    pub fn plan_read_upto(
        &self,
        fetch_offset: i64,
        to_log_end: bool,
    ) -> Result<Option<ReadPlan>, LogError> {
        if fetch_offset < self.log_start_offset || fetch_offset > self.written_offset {
            return Err(LogError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.written_offset,
            });
        }
        let (limit, bound) = if to_log_end {
            (self.written_offset, None)
        } else {
            let bounded = self.high_watermark < self.written_offset;
            (self.high_watermark, bounded.then_some(self.hw_position))
        };
        self.plan_read_bounded(fetch_offset, limit, bound)
    }

    /// As [`PartitionLog::plan_read`] for a `read_committed` consumer: up to the last stable
    /// offset. Returns the plan and the last stable offset.
    pub fn plan_read_committed(
        &mut self,
        fetch_offset: i64,
    ) -> Result<(Option<ReadPlan>, i64), LogError> {
        let lso = self.last_stable_offset();
        if lso >= self.high_watermark {
            return Ok((self.plan_read_upto(fetch_offset, false)?, lso));
        }
        if fetch_offset < self.log_start_offset || fetch_offset > self.written_offset {
            return Err(LogError::OffsetOutOfRange {
                offset: fetch_offset,
                log_start_offset: self.log_start_offset,
                log_end_offset: self.written_offset,
            });
        }
        if fetch_offset >= lso {
            return Ok((None, lso));
        }
        let at = self.position_of(lso)?;
        Ok((self.plan_read_bounded(fetch_offset, lso, Some(at))?, lso))
    }

    /// Where a read of `fetch_offset` starts, readable up to offset `limit`, whose file position
    /// is `bound` (`(segment base, position)`; `None`: the log end).
    fn plan_read_bounded(
        &self,
        fetch_offset: i64,
        limit: i64,
        bound: Option<(i64, u64)>,
    ) -> Result<Option<ReadPlan>, LogError> {
        if fetch_offset >= limit {
            return Ok(None);
        }
        let end_of = |seg: &Segment| match bound {
            Some((base, pos)) if seg.base_offset == base => pos,
            _ => seg.size,
        };
        // The segment holding the offset: the greatest base at or below it, unless that segment
        // ends before it (emptied by truncation or compaction), in which case the next one that
        // holds anything past it.
        if let Some((_, seg)) = self.segments.range(..=fetch_offset).next_back() {
            if seg.next_offset > fetch_offset {
                let (scan_offset, pos) = seg.offset_index.lookup(fetch_offset);
                return Ok(Some(ReadPlan {
                    segment_base: seg.base_offset,
                    file: seg.file.clone(),
                    path: seg.log_path.clone(),
                    scan_position: u64::from(pos),
                    scan_offset,
                    end_position: end_of(seg),
                }));
            }
        }
        let next = self
            .segments
            .range(fetch_offset + 1..)
            .map(|(_, s)| s)
            .find(|s| s.next_offset > fetch_offset && !s.is_empty())
            .filter(|s| bound.is_none_or(|(base, _)| s.base_offset <= base));
        Ok(next.map(|seg| ReadPlan {
            segment_base: seg.base_offset,
            file: seg.file.clone(),
            path: seg.log_path.clone(),
            scan_position: 0,
            scan_offset: seg.base_offset,
            end_position: end_of(seg),
        }))
    }

    /// The largest record timestamp in the log (ListOffsets' MAX_TIMESTAMP, KIP-734), or None
    /// when the log holds no records with a timestamp.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.segments
            .values()
            .filter(|s| !s.is_empty())
            .map(|s| s.max_timestamp)
            .max()
            .filter(|&t| t >= 0)
    }

    /// For `offsets_for_times`: the segments (oldest first) whose largest timestamp reaches
    /// `timestamp`, with the offset to scan from in the first one.
    pub fn plan_time_lookup(&self, timestamp: i64) -> Option<(i64, Vec<ReadPlan>)> {
        let mut plans = Vec::new();
        let mut start = None;
        for seg in self.segments.values() {
            if seg.max_timestamp < timestamp && plans.is_empty() {
                continue;
            }
            if seg.is_empty() {
                continue;
            }
            if start.is_none() {
                start = Some(seg.time_index.lookup(timestamp));
            }
            let (scan_offset, pos) = seg.offset_index.lookup(start.expect("set"));
            plans.push(ReadPlan {
                segment_base: seg.base_offset,
                file: seg.file.clone(),
                path: seg.log_path.clone(),
                scan_position: if plans.is_empty() { u64::from(pos) } else { 0 },
                scan_offset: if plans.is_empty() {
                    scan_offset
                } else {
                    seg.base_offset
                },
                end_position: seg.size,
            });
        }
        start.map(|s| (s, plans))
    }
}

/// The first batch boundary of `seg` at or past `offset`: `(offset there, file position)`, by the
/// offset index and a scan of batch headers.
pub(super) fn batch_boundary(seg: &Segment, offset: i64) -> Result<(i64, u64), LogError> {
    let (mut cur, pos) = seg.offset_index.lookup(offset);
    let mut pos = u64::from(pos);
    for item in seg.walk(pos) {
        if cur >= offset {
            break;
        }
        let (at, h) = item?;
        if h.base_offset >= offset {
            break;
        }
        cur = h.last_offset() + 1;
        pos = at + h.size() as u64;
    }
    Ok((cur, pos))
}
