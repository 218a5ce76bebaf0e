//! Appending: a produce request's batches validated and given offsets, a follower's batches kept
//! as the leader wrote them, the group write accounted (or undone), and segment rolls.

use super::checkpoint::write_i64;
use super::producer_state::{check_sequences, note_producer_batch};
use super::{DirectTarget, PartitionLog, PreparedAppend, PREFIX, RECOVERY_POINT_FILE};
use crate::error::{BatchError, LogError};
use crate::runtime::fs;
use crate::segment::{BatchMeta, Segment};
use bytes::{Bytes, BytesMut};
use ringlet_format::batch::{self, TimestampType};

/// Most bytes a batch's records may decompress to when a compacted topic looks for keys (the
/// default `socket.request.max.bytes`: a compression bomb is refused, not buffered).
const KEYLESS_SCAN_LIMIT: usize = 100 << 20;

impl PartitionLog {
    /// Validates batches fetched from the leader and keeps them as they are (offsets and leader
    /// epochs included): a follower's log is a byte copy of its leader's.
    pub fn prepare_replica_append(&mut self, records: &Bytes) -> Result<PreparedAppend, LogError> {
        if self.offline {
            return Err(LogError::Offline);
        }
        let mut out = PreparedAppend {
            bufs: Vec::with_capacity(1),
            batches: Vec::with_capacity(4),
            base_offset: self.appended_offset,
            last_offset: self.appended_offset - 1,
            bytes: 0,
            records: 0,
            log_append_time: -1,
            new_epochs: Vec::new(),
        };
        let mut rest: &[u8] = records;
        let mut expected = self.appended_offset;
        let mut latest = self.latest_epoch();
        let mut len = 0usize;
        while rest.len() >= batch::HEADER_SIZE {
            let Ok(b) = batch::next_batch(rest) else {
                break; // a partial batch at the end of a fetch: fetched again next time
            };
            // The leader's log may be compacted: records missing inside a batch, offsets
            // missing between batches; never going back.
            let h = batch::validate_stored(b)?;
            if h.base_offset < expected {
                return Err(LogError::NotContiguous {
                    expected,
                    got: h.base_offset,
                });
            }
            let last = h.base_offset + i64::from(h.last_offset_delta);
            if h.partition_leader_epoch > latest {
                latest = h.partition_leader_epoch;
                out.new_epochs.push((latest, h.base_offset));
            }
            note_producer_batch(&mut self.producers, &h, h.base_offset, last);
            self.txns.note(&h, b, h.base_offset);
            out.batches.push(BatchMeta {
                base_offset: h.base_offset,
                last_offset: last,
                size: b.len() as u32,
                max_timestamp: h.max_timestamp,
            });
            out.records += h.record_count as u64;
            out.last_offset = last;
            expected = last + 1;
            len += b.len();
            rest = &rest[b.len()..];
        }
        if len > 0 {
            out.bufs.push(records.slice(..len));
        }
        out.bytes = len as u64;
        self.appended_offset = expected;
        Ok(out)
    }

    /// A compacted topic refuses records without a key, as Kafka: Kafka's per-record message
    /// for each (the batch is decompressed to look; only compacted topics pay for it).
    fn keyless_errors(&self, b: &[u8], out: &mut Vec<(i32, String)>) -> Result<(), LogError> {
        let tp = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        for i in ringlet_format::compact::keyless_records(b, KEYLESS_SCAN_LIMIT)? {
            out.push((
                i,
                format!(
                    "Compacted topic cannot accept message without key in topic partition {}",
                    tp.as_deref().unwrap_or("?")
                ),
            ));
        }
        Ok(())
    }

    /// Validates a produce request's record set and assigns offsets from `appended_offset`.
    /// Nothing is copied unless `LogAppendTime` needs the batch rewritten.
    pub fn prepare_append(
        &mut self,
        records: &Bytes,
        now_ms: i64,
    ) -> Result<PreparedAppend, LogError> {
        self.prepare_append_from(records, now_ms, false)
    }

    /// As [`PartitionLog::prepare_append`]; `coordinator` allows control batches (the markers a
    /// transaction coordinator writes), which clients may not send.
    pub fn prepare_append_from(
        &mut self,
        records: &Bytes,
        now_ms: i64,
        coordinator: bool,
    ) -> Result<PreparedAppend, LogError> {
        if self.offline {
            return Err(LogError::Offline);
        }
        if records.is_empty() {
            return Err(BatchError::Truncated {
                have: 0,
                need: batch::HEADER_SIZE,
            }
            .into());
        }
        // First pass: validate everything, so a bad batch rejects the whole request.
        let mut rest: &[u8] = records;
        let mut headers = Vec::with_capacity(1);
        let mut timestamp_errors = Vec::new();
        let mut keyless = Vec::new();
        while !rest.is_empty() {
            let b = batch::next_batch(rest)?;
            if b.len() > self.config.max_message_bytes {
                return Err(BatchError::TooLarge {
                    size: b.len(),
                    max: self.config.max_message_bytes,
                }
                .into());
            }
            let h = batch::validate(b)?;
            if h.is_control() && !coordinator {
                return Err(BatchError::ControlFromClient.into());
            }
            if self.config.timestamp_type == TimestampType::CreateTime {
                batch::timestamp_errors(
                    b,
                    &h,
                    now_ms,
                    self.config.timestamp_before_max_ms,
                    self.config.timestamp_after_max_ms,
                    &mut timestamp_errors,
                )?;
            }
            if self.config.compact && !h.is_control() {
                self.keyless_errors(b, &mut keyless)?;
            }
            headers.push(h);
            rest = &rest[b.len()..];
        }
        if !keyless.is_empty() {
            return Err(BatchError::NullKeyOnCompactedTopic { records: keyless }.into());
        }
        if !timestamp_errors.is_empty() {
            return Err(BatchError::TimestampOutOfRange {
                records: timestamp_errors,
            }
            .into());
        }
        // Idempotent producers: refuse gaps and stale epochs; answer a retried batch with the
        // offsets it got the first time, without writing it again.
        if let Some((base, last)) = check_sequences(&self.producers, &headers)? {
            return Ok(PreparedAppend {
                bufs: Vec::new(),
                batches: Vec::new(),
                base_offset: base,
                last_offset: last,
                bytes: 0,
                records: 0,
                log_append_time: -1,
                new_epochs: Vec::new(),
            });
        }
        let mut out = PreparedAppend {
            bufs: Vec::with_capacity(headers.len() * 2),
            batches: Vec::with_capacity(headers.len()),
            base_offset: self.appended_offset,
            last_offset: self.appended_offset - 1,
            bytes: records.len() as u64,
            records: 0,
            log_append_time: -1,
            new_epochs: Vec::new(),
        };
        let mut offset_bytes = BytesMut::with_capacity(PREFIX * headers.len());
        let mut at = 0usize;
        for h in headers {
            let size = h.size();
            let base = self.appended_offset;
            let mut max_ts = h.max_timestamp;
            if self.config.timestamp_type == TimestampType::LogAppendTime {
                let mut copy = records[at..at + size].to_vec();
                copy[0..8].copy_from_slice(&base.to_be_bytes());
                copy[12..16].copy_from_slice(&self.leader_epoch.to_be_bytes());
                batch::set_log_append_time(&mut copy, now_ms);
                out.bufs.push(Bytes::from(copy));
                out.log_append_time = now_ms;
                max_ts = now_ms;
            } else {
                // The broker owns the bytes outside the CRC: baseOffset and partitionLeaderEpoch.
                offset_bytes.extend_from_slice(&base.to_be_bytes());
                offset_bytes.extend_from_slice(&records[at + 8..at + 12]);
                offset_bytes.extend_from_slice(&self.leader_epoch.to_be_bytes());
                out.bufs.push(offset_bytes.split().freeze());
                out.bufs.push(records.slice(at + PREFIX..at + size));
            }
            let last = base + i64::from(h.last_offset_delta);
            note_producer_batch(&mut self.producers, &h, base, last);
            self.txns.note(&h, &records[at..at + size], base);
            out.batches.push(BatchMeta {
                base_offset: base,
                last_offset: last,
                size: size as u32,
                max_timestamp: max_ts,
            });
            out.records += h.record_count as u64;
            out.last_offset = last;
            self.appended_offset = last + 1;
            at += size;
        }
        Ok(out)
    }

    /// Whether the active segment must roll before `incoming_bytes` more are written.
    pub fn needs_roll(&self, incoming_bytes: u64, now_ms: i64) -> bool {
        let a = self.active();
        if a.is_empty() {
            return false;
        }
        a.size + incoming_bytes > self.config.segment_bytes
            || now_ms - a.created_ms > self.config.segment_ms
            || a.offset_index.len() >= self.config.max_index_entries()
            || a.next_offset - a.base_offset + 1_000_000 > i64::from(u32::MAX)
    }

    /// Where the next group goes: (descriptor, file position).
    pub fn write_target(&self) -> (std::os::fd::RawFd, u64) {
        let a = self.active();
        (a.fd(), a.size)
    }

    /// Where the next group goes in direct mode, opening the active segment for `O_DIRECT` the
    /// first time; `None` in buffered mode or where the file system refuses direct I/O (the log
    /// then writes through the page cache, as Kafka does).
    pub fn direct_target(&mut self) -> Option<DirectTarget> {
        if !self.config.direct_io || self.direct_unsupported {
            return None;
        }
        let a = self.active_mut();
        if a.direct.is_none() {
            match fs::open_direct(&a.log_path) {
                Ok(Some(f)) => a.direct = Some(std::rc::Rc::new(f)),
                Ok(None) => {
                    tracing::info!(path = %a.log_path.display(), "the file system refuses O_DIRECT; this log writes through the page cache");
                    self.direct_unsupported = true;
                    return None;
                }
                Err(e) => {
                    // Transient (descriptors, an injected fault): buffered this time, retry later.
                    tracing::warn!(path = %a.log_path.display(), error = %e, "cannot open the segment for direct writes; writing this group through the page cache");
                    return None;
                }
            }
        }
        let a = self.active();
        Some(DirectTarget {
            direct: a.direct.clone().expect("opened above"),
            file: a.file.clone(),
            segment_base: a.base_offset,
            position: a.size,
        })
    }

    /// Accounts a group written to the active segment.
    pub fn commit_write(&mut self, group: &[PreparedAppend]) {
        let interval = self.config.index_interval_bytes;
        let replicated = self.replicated;
        let seg = self.active_mut();
        let base = seg.base_offset;
        let mut records = 0;
        let mut ends = Vec::new();
        for p in group {
            for meta in &p.batches {
                let pos = seg.size;
                seg.on_batch_written(meta, pos, interval);
                if replicated {
                    ends.push((meta.last_offset + 1, base, seg.size));
                }
            }
            records += p.records;
        }
        let end = seg.next_offset;
        let size = seg.size;
        assert!(end <= self.appended_offset);
        self.written_offset = end;
        self.batch_ends.extend(ends);
        if !replicated {
            self.high_watermark = end;
            self.hw_position = (base, size);
        }
        for p in group {
            for &(e, start) in &p.new_epochs {
                if let Err(err) = self.assign_epoch(e, start) {
                    tracing::error!(error = %err, "cannot write the leader-epoch checkpoint");
                }
            }
        }
        self.unflushed_messages += records;
        self.write_txn_entries();
        self.check_invariants();
    }

    /// Undoes offsets handed out for a group whose write failed, and cuts off any bytes of it that
    /// reached the file, so no half-written batch is ever visible. A failure to cut the file takes
    /// the log offline.
    pub fn abort_write(&mut self) {
        self.appended_offset = self.written_offset;
        let seg = self.active();
        if let Err(e) = fs::set_len(&seg.file, seg.size) {
            tracing::error!(path = %seg.log_path.display(), error = %e, "cannot cut a failed write; partition goes offline");
            self.offline = true;
            return;
        }
        // Sequences recorded for the failed group are wrong now: take producer state from what the
        // log holds, so that retries of the failed batches are accepted and nothing else is.
        if let Err(e) = self.rebuild_producer_state() {
            tracing::error!(error = %e, "cannot rebuild producer state after a failed write; partition goes offline");
            self.offline = true;
        }
    }

    /// Closes the active segment (the caller has flushed it) and starts a new one at the log end.
    pub fn roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        let end = self.written_offset;
        assert_eq!(self.appended_offset, end, "roll only between groups");
        {
            let dir = self.dir.clone();
            let preallocated = self.config.preallocate;
            let a = self.active_mut();
            a.end_active(preallocated)?;
            a.flushed_size = a.size;
            a.write_indexes(&dir)?;
        }
        self.flushed_offset = end;
        let seg = Segment::create(&self.dir, end, now_ms, self.preallocate_bytes())?;
        self.segments.insert(end, seg);
        self.write_recovery_point(end)?;
        self.write_producer_snapshot(end);
        tracing::debug!(dir = %self.dir.display(), base_offset = end, "rolled segment");
        Ok(())
    }

    /// Disk to reserve for a new segment: `segment.bytes` when `preallocate` is set.
    pub(super) fn preallocate_bytes(&self) -> u64 {
        if self.config.preallocate {
            self.config.segment_bytes
        } else {
            0
        }
    }

    pub(super) fn write_recovery_point(&self, offset: i64) -> Result<(), LogError> {
        write_i64(&self.dir.join(RECOVERY_POINT_FILE), offset)
    }
}
