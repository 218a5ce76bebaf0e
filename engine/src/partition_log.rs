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

use crate::batch::{self, TimestampType};
use crate::config::LogConfig;
use crate::error::{BatchError, LogError};
use crate::segment::{file_path, BatchMeta, Segment};
use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Name of the file holding the offset below which every segment is known to be flushed.
pub const RECOVERY_POINT_FILE: &str = "recovery-point";
/// Name of the file holding the partition's leader epoch.
pub const LEADER_EPOCH_FILE: &str = "leader-epoch";

/// Name of the leader-epoch cache: `(epoch, start offset)` pairs, Kafka's format (a version line,
/// a count line, then `epoch offset` lines).
pub const LEADER_EPOCH_CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

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
    pub file: Rc<File>,
    pub path: PathBuf,
    pub scan_position: u64,
    pub scan_offset: i64,
    pub end_position: u64,
}

/// Idempotent-producer state of one producer on this partition.
#[derive(Clone, Debug)]
struct ProducerState {
    epoch: i16,
    last_sequence: i32,
    /// The last few batches: (first sequence, last sequence, base offset, last offset).
    recent: std::collections::VecDeque<(i32, i32, i64, i64)>,
}

/// Batches remembered per producer for duplicate detection (Kafka keeps 5, matching
/// `max.in.flight.requests.per.connection` <= 5 for idempotent producers).
const PRODUCER_RECENT_BATCHES: usize = 5;

/// Bytes at the end of the log read at start-up to rebuild idempotent-producer state. Kafka
/// keeps producer-state snapshots; Ringlet rebuilds from the log's tail instead, because what
/// the state is for after a restart is recognising the retries of the last few in-flight batches,
/// which are always at the end of the log.
const PRODUCER_STATE_WINDOW: u64 = 64 << 20;

/// Records a batch of an idempotent producer: its epoch, last sequence, and recent batches.
fn note_producer_batch(
    producers: &mut std::collections::HashMap<i64, ProducerState>,
    h: &batch::BatchHeader,
    base: i64,
    last: i64,
) {
    if h.producer_id < 0 || h.base_sequence < 0 {
        return;
    }
    let st = producers
        .entry(h.producer_id)
        .or_insert_with(|| ProducerState {
            epoch: h.producer_epoch,
            last_sequence: -1,
            recent: std::collections::VecDeque::new(),
        });
    if st.epoch != h.producer_epoch {
        st.epoch = h.producer_epoch;
        st.recent.clear();
    }
    st.last_sequence = h.base_sequence.wrapping_add(h.last_offset_delta);
    if st.recent.len() == PRODUCER_RECENT_BATCHES {
        st.recent.pop_front();
    }
    st.recent
        .push_back((h.base_sequence, st.last_sequence, base, last));
}

pub struct PartitionLog {
    dir: PathBuf,
    producers: std::collections::HashMap<i64, ProducerState>,
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
}

impl PartitionLog {
    /// Opens (or creates) the log in `dir`. With `clean_shutdown` false, every segment from the
    /// recovery point on is validated batch by batch and the log is truncated at the first
    /// invalid or torn batch; segments after it are deleted.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
    ) -> Result<PartitionLog, LogError> {
        std::fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
        let now = crate::config::now_ms();
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))? {
            let entry = entry.map_err(|e| LogError::io(dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            } else if name.ends_with(".index") || name.ends_with(".timeindex") {
                let stem = name.split('.').next().unwrap_or_default();
                if !dir.join(format!("{stem}.log")).exists() {
                    // An index whose log is gone (a crash during deletion): drop it.
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        bases.sort_unstable();
        let recovery_point = read_i64_file(&dir.join(RECOVERY_POINT_FILE)).unwrap_or(0);
        let leader_epoch = read_i64_file(&dir.join(LEADER_EPOCH_FILE)).unwrap_or(0) as i32;
        // Recovery refuses batches stamped with an epoch above the newest one known, as garbage
        // outside the CRC. A follower's batches carry its leaders' epochs, recorded in the epoch
        // cache (written before the follower reports the batch to its leader), not in its own
        // leader-epoch file: the newest known epoch is the larger of the two.
        let epochs_on_disk = read_epochs(&dir.join(LEADER_EPOCH_CHECKPOINT_FILE));
        let newest_epoch = epochs_on_disk
            .last()
            .map_or(leader_epoch, |e| e.0.max(leader_epoch));
        let mut segments = BTreeMap::new();
        let mut truncated_at: Option<usize> = None;
        for (i, &base) in bases.iter().enumerate() {
            if truncated_at.is_some() {
                // Everything after a truncation point is discarded, as Kafka does.
                for ext in ["log", "index", "timeindex"] {
                    let _ = std::fs::remove_file(file_path(dir, base, ext));
                }
                continue;
            }
            let next_base = bases.get(i + 1).copied().unwrap_or(i64::MAX);
            let recover = !clean_shutdown && next_base > recovery_point;
            let (seg, truncated) = Segment::open(
                dir,
                base,
                recover,
                config.index_interval_bytes,
                newest_epoch,
                now,
            )?;
            if let Some((_, prev)) = segments.last_key_value() {
                let prev: &Segment = prev;
                if seg.base_offset < prev.next_offset {
                    return Err(LogError::Corrupt {
                        path: seg.log_path.clone(),
                        position: 0,
                        reason: format!(
                            "segment base {} overlaps previous end {}",
                            seg.base_offset, prev.next_offset
                        ),
                    });
                }
            }
            segments.insert(base, seg);
            if truncated {
                truncated_at = Some(i);
            }
        }
        if segments.is_empty() {
            let seg = Segment::create(dir, 0, now)?;
            segments.insert(0, seg);
        }
        let (&first_base, _) = segments.first_key_value().expect("one segment");
        let end = segments
            .last_key_value()
            .map(|(_, s)| s.next_offset)
            .expect("one segment");
        // An empty trailing segment may have a base above the previous end; the log end is the
        // greatest of both.
        let last_base = *segments.last_key_value().expect("one segment").0;
        let end = end.max(last_base);
        let log = PartitionLog {
            dir: dir.to_path_buf(),
            producers: std::collections::HashMap::new(),
            config,
            segments,
            log_start_offset: first_base,
            appended_offset: end,
            written_offset: end,
            flushed_offset: end,
            high_watermark: end,
            leader_epoch,
            epochs: epochs_on_disk
                .into_iter()
                .filter(|&(_, start)| start <= end)
                .collect(),
            replicated: false,
            batch_ends: std::collections::VecDeque::new(),
            hw_position: (0, 0),
            unflushed_messages: 0,
            last_flush_ms: now,
            offline: false,
        };
        if !clean_shutdown {
            // What recovery kept may still sit only in the page cache; make it durable before
            // anything new is acknowledged on top of it.
            let active = log.active();
            active
                .file
                .sync_data()
                .map_err(|e| LogError::io(&active.log_path, e))?;
        }
        log.write_recovery_point(log.active().base_offset)?;
        let mut log = log;
        log.hw_position = (log.active().base_offset, log.active().size);
        log.rebuild_producer_state()?;
        log.check_invariants();
        Ok(log)
    }

    /// Rebuilds idempotent-producer state from the batch headers of the log's last
    /// [`PRODUCER_STATE_WINDOW`] bytes (the previous segment too when the active one is smaller).
    /// Returns the producers found.
    fn rebuild_producer_state(&mut self) -> Result<usize, LogError> {
        let mut left = PRODUCER_STATE_WINDOW;
        let mut from: Vec<(i64, u64)> = Vec::new();
        for (&base, seg) in self.segments.iter().rev() {
            let start = if seg.size > left {
                // A batch boundary at or before `size − left`, through the offset index.
                let frac = (seg.size - left) as f64 / seg.size as f64;
                let guess = base + ((seg.next_offset - base) as f64 * frac) as i64;
                u64::from(seg.offset_index.lookup(guess).1)
            } else {
                0
            };
            from.push((base, start));
            left = left.saturating_sub(seg.size - start);
            if left == 0 {
                break;
            }
        }
        let mut producers = std::collections::HashMap::new();
        let mut head = [0u8; batch::HEADER_SIZE];
        for (base, start) in from.into_iter().rev() {
            let seg = &self.segments[&base];
            let mut pos = start;
            while pos + batch::HEADER_SIZE as u64 <= seg.size {
                seg.file
                    .read_exact_at(&mut head, pos)
                    .map_err(|e| LogError::io(&seg.log_path, e))?;
                let h = batch::BatchHeader::parse(&head).map_err(|e| LogError::Corrupt {
                    path: seg.log_path.clone(),
                    position: pos,
                    reason: e.to_string(),
                })?;
                let last = h.base_offset + i64::from(h.last_offset_delta);
                note_producer_batch(&mut producers, &h, h.base_offset, last);
                pos += batch::LOG_OVERHEAD as u64 + h.batch_length.max(0) as u64;
            }
        }
        let n = producers.len();
        self.producers = producers;
        Ok(n)
    }

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

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .last_entry()
            .expect("a log has an active segment")
            .into_mut()
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

    /// Records the leader epoch (for replication; persisted so it survives restarts).
    pub fn set_leader_epoch(&mut self, epoch: i32) -> Result<(), LogError> {
        self.leader_epoch = epoch;
        write_i64_file(&self.dir.join(LEADER_EPOCH_FILE), i64::from(epoch))
    }

    /// Makes this a replicated log: the high watermark starts at the checkpointed one (never past
    /// the log end) and from then on moves only through [`PartitionLog::raise_high_watermark`].
    pub fn set_replicated(&mut self) -> Result<(), LogError> {
        if self.replicated {
            return Ok(());
        }
        self.replicated = true;
        let hw = read_i64_file(&self.dir.join(HIGH_WATERMARK_FILE))
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
        write_i64_file(&self.dir.join(HIGH_WATERMARK_FILE), self.high_watermark)
    }

    /// `(segment base, file position)` of the batch boundary at `offset` (the first batch at or
    /// past it), by the offset index and a scan of batch headers.
    fn position_of(&self, offset: i64) -> Result<(i64, u64), LogError> {
        let seg = match self.segments.range(..=offset).next_back() {
            Some((_, s)) if s.next_offset >= offset => s,
            _ => self.active(),
        };
        if offset >= seg.next_offset {
            return Ok((seg.base_offset, seg.size));
        }
        Ok((seg.base_offset, batch_boundary(seg, offset)?.1))
    }

    /// The latest leader epoch in the cache (-1 when empty).
    pub fn latest_epoch(&self) -> i32 {
        self.epochs.last().map_or(-1, |e| e.0)
    }

    /// Kafka's `endOffsetFor`: for `epoch`, the largest cached epoch at or below it and the
    /// first offset after it (the log end for the latest epoch); `(-1, -1)` when unknown.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        if epoch < 0 {
            return (-1, -1);
        }
        if self.latest_epoch() == epoch {
            return (epoch, self.written_offset);
        }
        let Some(&(_, higher_start)) = self.epochs.iter().find(|e| e.0 > epoch) else {
            return (-1, -1);
        };
        match self.epochs.iter().rev().find(|e| e.0 <= epoch) {
            Some(&(e, _)) => (e, higher_start),
            None => (epoch, higher_start),
        }
    }

    /// Starts leader epoch `epoch` at the log end (a broker becoming leader): produced batches
    /// are stamped with it from now on.
    pub fn begin_leader_epoch(&mut self, epoch: i32) -> Result<(), LogError> {
        if epoch != self.leader_epoch {
            self.set_leader_epoch(epoch)?;
        }
        self.assign_epoch(epoch, self.written_offset)
    }

    fn assign_epoch(&mut self, epoch: i32, start: i64) -> Result<(), LogError> {
        if self.latest_epoch() >= epoch {
            return Ok(());
        }
        // A newer epoch starting at the same offset replaces an empty older one.
        while self.epochs.last().is_some_and(|e| e.1 >= start) {
            self.epochs.pop();
        }
        self.epochs.push((epoch, start));
        self.write_epochs()
    }

    fn write_epochs(&self) -> Result<(), LogError> {
        let p = self.dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        let mut s = format!("0\n{}\n", self.epochs.len());
        for (e, o) in &self.epochs {
            s.push_str(&format!("{e} {o}\n"));
        }
        let tmp = p.with_extension("tmp");
        let f = std::fs::File::create(&tmp).map_err(|e| LogError::io(&tmp, e))?;
        use std::io::Write;
        (&f).write_all(s.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| LogError::io(&tmp, e))?;
        std::fs::rename(&tmp, &p).map_err(|e| LogError::io(&p, e))
    }

    /// The leader-epoch cache, oldest first.
    pub fn epochs(&self) -> &[(i32, i64)] {
        &self.epochs
    }

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
            let h = batch::validate(b)?;
            if h.base_offset != expected {
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

    /// Validates a produce request's record set and assigns offsets from `appended_offset`.
    /// Nothing is copied unless `LogAppendTime` needs the batch rewritten.
    pub fn prepare_append(
        &mut self,
        records: &Bytes,
        now_ms: i64,
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
        while !rest.is_empty() {
            let b = batch::next_batch(rest)?;
            if b.len() > self.config.max_message_bytes {
                return Err(BatchError::TooLarge {
                    size: b.len(),
                    max: self.config.max_message_bytes,
                }
                .into());
            }
            headers.push(batch::validate(b)?);
            rest = &rest[b.len()..];
        }
        // Idempotent producers: refuse gaps and stale epochs; answer a retried batch with the
        // offsets it got the first time, without writing it again.
        for h in &headers {
            if h.producer_id < 0 || h.base_sequence < 0 {
                continue;
            }
            if let Some(st) = self.producers.get(&h.producer_id) {
                if h.producer_epoch < st.epoch {
                    return Err(BatchError::InvalidProducerEpoch {
                        producer_id: h.producer_id,
                        epoch: h.producer_epoch,
                        current_epoch: st.epoch,
                    }
                    .into());
                }
                if h.producer_epoch == st.epoch {
                    let last_seq = h.base_sequence.wrapping_add(h.last_offset_delta);
                    if let Some(&(_, _, base, last)) = st
                        .recent
                        .iter()
                        .find(|r| r.0 == h.base_sequence && r.1 == last_seq)
                    {
                        if headers.len() == 1 {
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
                    }
                    if h.base_sequence != st.last_sequence.wrapping_add(1) {
                        return Err(BatchError::OutOfOrderSequence {
                            producer_id: h.producer_id,
                            sequence: h.base_sequence,
                            last_sequence: st.last_sequence,
                        }
                        .into());
                    }
                }
            }
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
        self.check_invariants();
    }

    /// Undoes offsets handed out for a group whose write failed, and cuts off any bytes of it that
    /// reached the file, so no half-written batch is ever visible. A failure to cut the file takes
    /// the log offline.
    pub fn abort_write(&mut self) {
        self.appended_offset = self.written_offset;
        let seg = self.active();
        if let Err(e) = seg.file.set_len(seg.size) {
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
        self.check_invariants();
    }

    /// Closes the active segment (the caller has flushed it) and starts a new one at the log end.
    pub fn roll(&mut self, now_ms: i64) -> Result<(), LogError> {
        let end = self.written_offset;
        assert_eq!(self.appended_offset, end, "roll only between groups");
        {
            let dir = self.dir.clone();
            let a = self.active_mut();
            a.flushed_size = a.size;
            a.write_indexes(&dir)?;
        }
        self.flushed_offset = end;
        let seg = Segment::create(&self.dir, end, now_ms)?;
        self.segments.insert(end, seg);
        self.write_recovery_point(end)?;
        tracing::debug!(dir = %self.dir.display(), base_offset = end, "rolled segment");
        Ok(())
    }

    fn write_recovery_point(&self, offset: i64) -> Result<(), LogError> {
        write_i64_file(&self.dir.join(RECOVERY_POINT_FILE), offset)
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
        let limit = if to_log_end {
            self.written_offset
        } else {
            self.high_watermark
        };
        if fetch_offset >= limit {
            return Ok(None);
        }
        let bounded = !to_log_end && self.high_watermark < self.written_offset;
        let end_of = |seg: &Segment| {
            if bounded && seg.base_offset == self.hw_position.0 {
                self.hw_position.1
            } else {
                seg.size
            }
        };
        // The segment holding the offset: the greatest base at or below it, unless that segment
        // ends before it (emptied by truncation), in which case the next one.
        if let Some((_, seg)) = self.segments.range(..=fetch_offset).next_back() {
            if seg.next_offset > fetch_offset {
                let (scan_offset, pos) = seg.offset_index.lookup(fetch_offset);
                return Ok(Some(ReadPlan {
                    file: seg.file.clone(),
                    path: seg.log_path.clone(),
                    scan_position: u64::from(pos),
                    scan_offset,
                    end_position: end_of(seg),
                }));
            }
        }
        // The offset falls in a gap (compacted or truncated away): start at the next segment.
        if let Some((_, seg)) = self.segments.range(fetch_offset + 1..).next() {
            return Ok(Some(ReadPlan {
                file: seg.file.clone(),
                path: seg.log_path.clone(),
                scan_position: 0,
                scan_offset: seg.base_offset,
                end_position: end_of(seg),
            }));
        }
        Ok(None)
    }

    /// For `offsets_for_times`: the segments (oldest first) whose largest timestamp reaches
    /// `timestamp`, with the offset to scan from in the first one.
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

    /// Deletes whole segments past `log.retention.ms` or beyond `log.retention.bytes` (never the
    /// active one) and advances `log_start_offset`. Returns how many were deleted.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let mut deleted = 0;
        let mut total = self.size_bytes() as i64;
        while self.segments.len() > 1 {
            let (&base, seg) = self.segments.first_key_value().expect("more than one");
            let too_old = self.config.retention_ms >= 0
                && seg.max_timestamp >= 0
                && now_ms - seg.max_timestamp > self.config.retention_ms;
            let too_big = self.config.retention_bytes >= 0
                && total - seg.size as i64 >= self.config.retention_bytes;
            if !(too_old || too_big) {
                break;
            }
            total -= seg.size as i64;
            let seg = self.segments.remove(&base).expect("present");
            for ext in ["log", "index", "timeindex"] {
                let p = file_path(&self.dir, base, ext);
                if let Err(e) = std::fs::remove_file(&p) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        return Err(LogError::io(p, e));
                    }
                }
            }
            tracing::info!(path = %seg.log_path.display(), reason = if too_old { "retention.ms" } else { "retention.bytes" }, "deleted segment");
            deleted += 1;
        }
        let first = *self.segments.first_key_value().expect("active stays").0;
        self.log_start_offset = self.log_start_offset.max(first);
        self.high_watermark = self.high_watermark.max(self.log_start_offset);
        self.flushed_offset = self
            .flushed_offset
            .max(self.log_start_offset)
            .min(self.written_offset);
        self.check_invariants();
        Ok(deleted)
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
        let later: Vec<i64> = self.segments.range(offset + 1..).map(|(&b, _)| b).collect();
        for base in later {
            if self.segments.len() == 1 {
                break;
            }
            self.segments.remove(&base);
            for ext in ["log", "index", "timeindex"] {
                let _ = std::fs::remove_file(file_path(&self.dir, base, ext));
            }
        }
        let (cur, pos) = batch_boundary(self.active(), offset)?;
        let seg = self.active_mut();
        seg.truncate_to(cur, pos)?;
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

    /// Writes the active segment's indexes and fsyncs it: the clean-shutdown path.
    pub fn close(&mut self) -> Result<(), LogError> {
        let dir = self.dir.clone();
        let a = self.active();
        a.file
            .sync_data()
            .map_err(|e| LogError::io(&a.log_path, e))?;
        a.write_indexes(&dir)?;
        let end = self.written_offset;
        self.flushed_offset = end;
        let base = self.active().base_offset;
        self.write_recovery_point(base)?;
        Ok(())
    }

    /// Deletes every file of this log (topic deletion).
    pub fn delete(self) -> Result<(), LogError> {
        std::fs::remove_dir_all(&self.dir).map_err(|e| LogError::io(&self.dir, e))
    }
}

/// The first batch boundary of `seg` at or past `offset`: `(offset there, file position)`, by the
/// offset index and a scan of batch headers.
fn batch_boundary(seg: &Segment, offset: i64) -> Result<(i64, u64), LogError> {
    let (mut cur, pos) = seg.offset_index.lookup(offset);
    let mut pos = u64::from(pos);
    let mut head = [0u8; batch::OFFSETS_PREFIX];
    while pos < seg.size && cur < offset {
        seg.file
            .read_exact_at(&mut head, pos)
            .map_err(|e| LogError::io(&seg.log_path, e))?;
        let (base, size, delta) = batch::peek_offsets(&head).ok_or_else(|| LogError::Corrupt {
            path: seg.log_path.clone(),
            position: pos,
            reason: "bad batch header".into(),
        })?;
        if base >= offset {
            break;
        }
        cur = base + i64::from(delta) + 1;
        pos += size as u64;
    }
    Ok((cur, pos))
}

fn read_epochs(p: &Path) -> Vec<(i32, i64)> {
    let Ok(s) = std::fs::read_to_string(p) else {
        return Vec::new();
    };
    s.lines()
        .skip(2)
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}

fn read_i64_file(p: &Path) -> Option<i64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn write_i64_file(p: &Path, v: i64) -> Result<(), LogError> {
    // Write-then-rename so a crash leaves the old value or the new one, never a torn one.
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, format!("{v}\n")).map_err(|e| LogError::io(&tmp, e))?;
    std::fs::rename(&tmp, p).map_err(|e| LogError::io(p, e))
}
