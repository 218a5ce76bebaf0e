//! Opening a log: the segments on disk, recovery from the recovery point after an unclean
//! shutdown (truncating at the first invalid or torn batch), and idempotent-producer state rebuilt
//! from the log's tail.

use super::checkpoint::read_i64;
use super::epoch_cache::read_epochs;
use super::producer_state::{note_producer_batch, PRODUCER_STATE_WINDOW, RECENT_WINDOW};
use super::{
    PartitionLog, LEADER_EPOCH_CHECKPOINT_FILE, LEADER_EPOCH_FILE, LOG_START_OFFSET_FILE,
    RECOVERY_POINT_FILE,
};
use crate::config::LogConfig;
use crate::error::LogError;
use crate::runtime::fs;
use crate::segment::{file_path, Segment};
use std::collections::BTreeMap;
use std::path::Path;

impl PartitionLog {
    /// Opens (or creates) the log in `dir`. With `clean_shutdown` false, every segment from the
    /// recovery point on is validated batch by batch and the log is truncated at the first
    /// invalid or torn batch; segments after it are deleted.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
    ) -> Result<PartitionLog, LogError> {
        fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
        let now = crate::config::now_ms();
        super::compaction::recover_cleaner_files(dir)?;
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
                    let _ = fs::remove_file(&entry.path());
                }
            }
        }
        bases.sort_unstable();
        let recovery_point = read_i64(&dir.join(RECOVERY_POINT_FILE)).unwrap_or(0);
        let leader_epoch = read_i64(&dir.join(LEADER_EPOCH_FILE)).unwrap_or(0) as i32;
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
                    let _ = fs::remove_file(&file_path(dir, base, ext));
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
                config.compact || i + 1 < bases.len(),
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
            let bytes = if config.preallocate {
                config.segment_bytes
            } else {
                0
            };
            let seg = Segment::create(dir, 0, now, bytes)?;
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
        // DeleteRecords may have moved the log start inside the first segment.
        let log_start = read_i64(&dir.join(LOG_START_OFFSET_FILE))
            .unwrap_or(first_base)
            .clamp(first_base, end);
        let log = PartitionLog {
            dir: dir.to_path_buf(),
            producers: std::collections::HashMap::new(),
            txns: Default::default(),
            config,
            segments,
            log_start_offset: log_start,
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
            direct_unsupported: false,
        };
        if !clean_shutdown {
            // What recovery kept may still sit only in the page cache; make it durable before
            // anything new is acknowledged on top of it.
            let active = log.active();
            fs::sync_data(&active.file).map_err(|e| LogError::io(&active.log_path, e))?;
        }
        log.write_recovery_point(log.active().base_offset)?;
        let mut log = log;
        log.hw_position = (log.active().base_offset, log.active().size);
        log.load_txn_indexes();
        log.rebuild_producer_state()?;
        log.check_invariants();
        Ok(log)
    }

    /// Rebuilds idempotent-producer and transaction state: from the newest producer-state
    /// snapshot and the batch headers after it, or without one from the log's last
    /// [`PRODUCER_STATE_WINDOW`] bytes (the previous segment too when the active one is smaller).
    /// With a snapshot, the last [`RECENT_WINDOW`] bytes before it are read too, for the producers'
    /// last few batches only (a snapshot holds one per producer, Kafka's layout, and retries of
    /// the others after a restart should still be recognised as duplicates).
    /// Returns the producers found.
    pub(super) fn rebuild_producer_state(&mut self) -> Result<usize, LogError> {
        let mut producers = std::collections::HashMap::new();
        // Transactions open in what is scanned are rebuilt with it; aborted ones already in the
        // `.txnindex` files stay, markers scanned add any the index missed.
        self.txns.reset_to(self.written_offset);
        let (from, snapshot) = match self.load_producer_snapshot(&mut producers) {
            Some(offset) => {
                let after = self.positions_from(offset);
                let recent = self.tail_window(RECENT_WINDOW);
                // The earlier of the two starts (nothing after a snapshot at the log end).
                let from = match (recent.first(), after.first()) {
                    (Some(r), Some(a)) if a <= r => after,
                    _ => recent,
                };
                (from, offset)
            }
            None => (self.tail_window(PRODUCER_STATE_WINDOW), i64::MIN),
        };
        let mut older: std::collections::HashMap<i64, Vec<ringlet_format::batch::BatchHeader>> =
            Default::default();
        for (base, start) in from {
            let headers: Vec<_> = self.segments[&base].walk(start).collect();
            for item in headers {
                let (pos, h) = item?;
                if h.last_offset() < snapshot {
                    if h.producer_id >= 0 && !h.is_control() {
                        older.entry(h.producer_id).or_default().push(h);
                    }
                    continue;
                }
                note_producer_batch(&mut producers, &h, h.base_offset, h.last_offset());
                if h.is_transactional() {
                    let bytes = if h.is_control() {
                        self.read_batch_at(base, pos, h.size())?
                    } else {
                        Vec::new()
                    };
                    self.txns.note(&h, &bytes, h.base_offset);
                }
            }
        }
        for (pid, headers) in older {
            if let Some(st) = producers.get_mut(&pid) {
                st.remember_older(&headers);
            }
        }
        let n = producers.len();
        self.producers = producers;
        Ok(n)
    }

    /// Where to scan from to see every batch at or past `offset`: (segment base, position),
    /// ascending.
    fn positions_from(&self, offset: i64) -> Vec<(i64, u64)> {
        self.segments
            .iter()
            .filter(|(_, seg)| seg.next_offset > offset)
            .map(|(&base, seg)| {
                let start = if base < offset {
                    u64::from(seg.offset_index.lookup(offset).1)
                } else {
                    0
                };
                (base, start)
            })
            .collect()
    }

    /// The log's last `window` bytes as (segment base, position), ascending.
    fn tail_window(&self, window: u64) -> Vec<(i64, u64)> {
        let mut left = window;
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
        from.reverse();
        from
    }
}
