//! The read side of a partition: fetches resolved to file regions (or cached blocks) up to the
//! high watermark, the last stable offset or the log end, and timestamp lookups.

use super::{add, FileRegion, Partition, ReadResult, Region};
use crate::error::LogError;
use crate::partition_log::ReadPlan;
use crate::runtime::io;
use ringlet_format::batch;
use std::rc::Rc;

impl Partition {
    /// Resolves a fetch at `fetch_offset` to a file region of at most `max_bytes` (but always the
    /// whole first batch, as KIP-74 asks), bounded by the high watermark. The region may end in a
    /// partial batch, which clients discard, as with Kafka.
    pub async fn read(
        self: &Rc<Self>,
        fetch_offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, LogError> {
        self.read_upto(fetch_offset, max_bytes, false).await
    }

    /// As [`Partition::read`]; `to_log_end` reads past the high watermark (a follower's fetch).
    pub async fn read_upto(
        self: &Rc<Self>,
        fetch_offset: i64,
        max_bytes: usize,
        to_log_end: bool,
    ) -> Result<ReadResult, LogError> {
        self.read_isolated(fetch_offset, max_bytes, to_log_end, false)
            .await
    }

    /// As [`Partition::read_upto`]; `committed` reads as a `read_committed` consumer: up to the
    /// last stable offset, with the aborted transactions among what it returns.
    pub async fn read_isolated(
        self: &Rc<Self>,
        fetch_offset: i64,
        max_bytes: usize,
        to_log_end: bool,
        committed: bool,
    ) -> Result<ReadResult, LogError> {
        let (plan, hw, lso, start, read_ahead, aborted) = {
            let mut log = self.log.borrow_mut();
            let read_ahead = if log.writes_direct() {
                log.config.read_ahead_bytes
            } else {
                0
            };
            let (plan, lso) = if committed {
                log.plan_read_committed(fetch_offset)?
            } else {
                let lso = log.last_stable_offset();
                (log.plan_read_upto(fetch_offset, to_log_end)?, lso)
            };
            let aborted = if committed && plan.is_some() {
                log.aborted_transactions(fetch_offset, lso)
            } else {
                Vec::new()
            };
            (
                plan,
                log.high_watermark(),
                lso,
                log.log_start_offset(),
                read_ahead,
                aborted,
            )
        };
        let mut result = ReadResult {
            high_watermark: hw,
            last_stable_offset: lso,
            aborted,
            log_start_offset: start,
            region: None,
        };
        let Some(plan) = plan else {
            return Ok(result);
        };
        let hit = self.direct.read(
            plan.segment_base,
            fetch_offset,
            max_bytes,
            plan.end_position,
        );
        if let Some(hit) = hit {
            add(&self.counters.bytes_out, hit.len as u64);
            add(&self.counters.reads, 1);
            result.region = Some(Region::Memory {
                parts: hit.parts,
                len: hit.len,
            });
            return Ok(result);
        }
        if read_ahead > 0 {
            let cold = self
                .read_ahead
                .read(&plan, fetch_offset, max_bytes, read_ahead)
                .await?;
            if let Some(cold) = cold {
                if cold.len > 0 {
                    add(&self.counters.bytes_out, cold.len as u64);
                    add(&self.counters.reads, 1);
                    result.region = Some(Region::Memory {
                        parts: cold.parts,
                        len: cold.len,
                    });
                }
                return Ok(result);
            }
        }
        let Some((position, first_size)) = locate(&plan, fetch_offset).await? else {
            return Ok(result);
        };
        let len = (plan.end_position - position).min(max_bytes.max(first_size) as u64) as usize;
        add(&self.counters.bytes_out, len as u64);
        add(&self.counters.reads, 1);
        result.region = Some(Region::File(FileRegion {
            file: plan.file,
            position,
            len,
        }));
        Ok(result)
    }

    /// The first batch whose largest timestamp is at or after `timestamp`: `(offset, timestamp)`.
    pub async fn offset_for_timestamp(
        self: &Rc<Self>,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let plans = self.log.borrow().plan_time_lookup(timestamp);
        let Some((_, plans)) = plans else {
            return Ok(None);
        };
        for plan in plans {
            let mut walk = HeaderWalk::new(&plan);
            while let Some((pos, h)) = walk.next().await? {
                if h.max_timestamp >= timestamp {
                    use std::os::fd::AsRawFd;
                    let whole = io::read_at(plan.file.as_raw_fd(), pos, h.size())
                        .await
                        .map_err(|e| LogError::io(&plan.path, e))?;
                    let found = batch::first_at_or_after(&whole, timestamp)
                        .map_err(|e| corrupt(&plan, pos, e.to_string()))?;
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }
}

fn corrupt(plan: &ReadPlan, position: u64, reason: String) -> LogError {
    LogError::Corrupt {
        path: plan.path.clone(),
        position,
        reason,
    }
}

/// The batch headers of a read plan's range, one ring read per batch (the asynchronous twin of
/// [`crate::segment::Segment::walk`], for reads on the shard): `(file position, header)`.
struct HeaderWalk<'a> {
    plan: &'a ReadPlan,
    pos: u64,
}

impl<'a> HeaderWalk<'a> {
    fn new(plan: &'a ReadPlan) -> HeaderWalk<'a> {
        HeaderWalk {
            plan,
            pos: plan.scan_position,
        }
    }

    async fn next(&mut self) -> Result<Option<(u64, batch::BatchHeader)>, LogError> {
        use std::os::fd::AsRawFd;
        let (plan, at) = (self.plan, self.pos);
        if at >= plan.end_position {
            return Ok(None);
        }
        let head = io::read_at(plan.file.as_raw_fd(), at, batch::HEADER_SIZE)
            .await
            .map_err(|e| LogError::io(&plan.path, e))?;
        if head.len() < batch::HEADER_SIZE {
            return Err(corrupt(plan, at, "short batch header".into()));
        }
        let h = batch::BatchHeader::parse(&head).map_err(|e| corrupt(plan, at, e.to_string()))?;
        self.pos = at + h.size() as u64;
        Ok(Some((at, h)))
    }
}

/// Walks batch headers from the plan's indexed position to the batch holding `offset`; returns
/// its position and size.
async fn locate(plan: &ReadPlan, offset: i64) -> Result<Option<(u64, usize)>, LogError> {
    let mut walk = HeaderWalk::new(plan);
    while let Some((pos, h)) = walk.next().await? {
        if h.last_offset() >= offset {
            return Ok(Some((pos, h.size())));
        }
    }
    Ok(None)
}
