//! The log's side of compaction (`cleanup.policy=compact`): which segments a cleaning takes
//! ([`PartitionLog::clean_plan`]), installing the cleaned segments in their place
//! ([`PartitionLog::install_cleaned`]), and finishing or undoing a swap a crash interrupted
//! ([`recover_cleaner_files`]). The cleaning itself, which reads and writes through the shard's
//! ring, is [`crate::cleaner`].
//!
//! A swap, one group of consecutive segments at a time, as Kafka's `replaceSegments`:
//!
//! 1. the cleaned segment is complete and synced as `<base>.log.cleaned`;
//! 2. the manifest `cleaner-swap` records `<base> <next base>`: the segments it replaces are
//!    those with bases in that range (written durably);
//! 3. `<base>.log.cleaned` is renamed `<base>.log.swap` (from here the swap goes forward);
//! 4. the replaced segments' files are removed (indexes first, each `.log` last);
//! 5. `<base>.log.swap` is renamed `<base>.log`, the directory synced, the indexes written.
//!
//! At open: `.cleaned` files are deleted (the originals are all there); a `.swap` file with its
//! manifest finishes steps 4-5; index files are rebuilt when missing. A crash at any step leaves
//! either the original segments or the cleaned one, never a mix and never neither.

use super::checkpoint::{read_i64, write_durably, write_i64};
use super::PartitionLog;
use crate::error::LogError;
use crate::runtime::fs;
use crate::segment::{file_path, Segment};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The offset below which the log is compacted (Kafka keeps one `cleaner-offset-checkpoint` per
/// log directory; Ringlet keeps one per partition, like its other checkpoints).
pub const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
const SWAP_MANIFEST: &str = "cleaner-swap";
const CLEANED: &str = "log.cleaned";
const SWAP: &str = "log.swap";

/// A segment the cleaner reads; its file stays open even if the log lets it go meanwhile.
#[derive(Clone, Debug)]
pub struct SourceSegment {
    pub base: i64,
    pub file: Rc<File>,
    pub size: u64,
    pub next_offset: i64,
}

/// What one cleaning covers, decided by [`PartitionLog::clean_plan`].
#[derive(Debug)]
pub struct CleanPlan {
    pub dir: PathBuf,
    /// Every non-active segment from the log's start up to the end of the cleanable section:
    /// all of them are rewritten.
    pub sources: Vec<SourceSegment>,
    /// Index in `sources` of the first dirty segment (not compacted since it was written): the
    /// cleaner's map of latest offsets per key is built from these.
    pub dirty_from: usize,
    /// Base of the segment after the last source (where the cleanable section ends).
    pub end: i64,
    pub dirty_bytes: u64,
    pub total_bytes: u64,
    pub segment_bytes: u64,
    pub index_interval: usize,
    pub delete_retention_ms: i64,
    /// The time the plan was made at: tombstones' delete horizons are measured against it.
    pub now_ms: i64,
    /// Each idempotent producer's last batch (its last offset): kept, emptied if need be, so
    /// the producer's sequence survives compaction.
    pub last_batches: HashMap<i64, i64>,
    /// Aborted transactions: their records are removed (Kafka's cleaner does the same), never
    /// taken as a key's latest value.
    pub aborted: Vec<super::AbortedTxn>,
}

impl CleanPlan {
    /// Whether a batch of `producer_id` at `offset` belongs to an aborted transaction.
    pub fn is_aborted(&self, producer_id: i64, offset: i64) -> bool {
        producer_id >= 0
            && self.aborted.iter().any(|a| {
                a.producer_id == producer_id && a.first_offset <= offset && offset <= a.last_offset
            })
    }
}

impl CleanPlan {
    /// `dirty / (clean + dirty)` bytes of the cleanable section.
    pub fn dirty_ratio(&self) -> f64 {
        if self.total_bytes == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / self.total_bytes as f64
        }
    }
}

/// A cleaned segment, written as `<base>.log.cleaned`, and what it replaces.
pub struct CleanedGroup {
    pub segment: Segment,
    /// `(base, size)` of each segment it replaces, as they were when read.
    pub replaces: Vec<(i64, u64)>,
    /// Base of the segment after the group.
    pub next_base: i64,
}

impl CleanedGroup {
    /// Creates the empty `<base>.log.cleaned` file of a group.
    pub fn create(dir: &Path, base: i64, now_ms: i64) -> Result<Segment, LogError> {
        Segment::create_at(file_path(dir, base, CLEANED), base, now_ms)
    }
}

impl PartitionLog {
    /// The compaction status of a compacted log: `(first dirty offset, dirty bytes, clean
    /// bytes)` of its non-active segments (metrics; no I/O but the checkpoint read).
    pub fn cleaner_status(&self) -> Option<(i64, u64, u64)> {
        if !self.config.compact {
            return None;
        }
        let first_dirty = self.first_dirty_offset();
        let active = self.active().base_offset;
        let (mut dirty, mut clean) = (0, 0);
        for seg in self.segments.range(..active).map(|(_, s)| s) {
            if seg.next_offset > first_dirty || seg.base_offset >= first_dirty {
                dirty += seg.size;
            } else {
                clean += seg.size;
            }
        }
        Some((first_dirty, dirty, clean))
    }

    fn first_dirty_offset(&self) -> i64 {
        read_i64(&self.dir.join(CLEANER_CHECKPOINT_FILE))
            .unwrap_or(0)
            .max(self.log_start_offset)
    }

    /// What a cleaning would take now, or `None` when the log is not compacted or not due: its
    /// dirty ratio is under `min.cleanable.dirty.ratio` and no dirty segment is older than
    /// `max.compaction.lag.ms`. The active segment, segments past the high watermark and
    /// segments younger than `min.compaction.lag.ms` are never cleaned.
    pub fn clean_plan(&self, now_ms: i64) -> Option<CleanPlan> {
        if !self.config.compact || self.offline || self.segments.len() < 2 {
            return None;
        }
        let first_dirty = self.first_dirty_offset();
        let active = self.active().base_offset;
        let lag = self.config.min_compaction_lag_ms;
        let mut plan = CleanPlan {
            dir: self.dir.clone(),
            sources: Vec::new(),
            dirty_from: usize::MAX,
            end: active,
            dirty_bytes: 0,
            total_bytes: 0,
            segment_bytes: self.config.segment_bytes,
            index_interval: self.config.index_interval_bytes,
            delete_retention_ms: self.config.delete_retention_ms,
            now_ms,
            last_batches: self.producer_last_offsets(),
            aborted: self.txns_aborted(),
        };
        // Never past the last stable offset: an open transaction's records may yet be aborted.
        let stable = self.stable_end();
        let mut overdue = false;
        for (&base, seg) in self.segments.range(..active) {
            let young = lag > 0 && seg.max_timestamp > now_ms.saturating_sub(lag);
            if seg.next_offset > stable || young {
                plan.end = base;
                break;
            }
            let dirty = seg.next_offset > first_dirty || base >= first_dirty;
            if dirty {
                plan.dirty_from = plan.dirty_from.min(plan.sources.len());
                plan.dirty_bytes += seg.size;
                overdue |= seg.max_timestamp >= 0
                    && now_ms.saturating_sub(seg.max_timestamp) > self.config.max_compaction_lag_ms;
            }
            plan.total_bytes += seg.size;
            plan.sources.push(SourceSegment {
                base,
                file: seg.file.clone(),
                size: seg.size,
                next_offset: seg.next_offset,
            });
        }
        let due = plan.dirty_ratio() >= self.config.min_cleanable_dirty_ratio || overdue;
        (plan.dirty_bytes > 0 && due).then_some(plan)
    }

    /// Puts cleaned segments in place of the ones they replace, then records `end` as the
    /// offset below which the log is compacted. Returns false, leaving the log as it was, when
    /// the log changed meanwhile (retention, DeleteRecords or truncation dropped a segment the
    /// cleaning read); a failure halfway takes the log offline (reopening finishes the swap).
    pub fn install_cleaned(
        &mut self,
        groups: Vec<CleanedGroup>,
        end: i64,
    ) -> Result<bool, LogError> {
        let active = self.active().base_offset;
        let unchanged = groups.iter().all(|g| {
            (g.next_base == active || self.segments.contains_key(&g.next_base))
                && g.replaces.iter().all(|&(base, size)| {
                    base < active && self.segments.get(&base).is_some_and(|s| s.size == size)
                })
        });
        if !unchanged || self.offline {
            for g in &groups {
                let _ = fs::remove_file(&g.segment.log_path);
            }
            return Ok(false);
        }
        for g in groups {
            if let Err(e) = self.swap_in(g) {
                tracing::error!(dir = %self.dir.display(), error = %e, "swapping a cleaned segment failed; partition goes offline");
                self.offline = true;
                return Err(e);
            }
        }
        let (hw_base, _) = self.hw_position;
        if !self.segments.contains_key(&hw_base) || hw_base < active {
            self.hw_position = self.position_of(self.high_watermark)?;
        }
        write_i64(&self.dir.join(CLEANER_CHECKPOINT_FILE), end)?;
        self.check_invariants();
        Ok(true)
    }

    fn swap_in(&mut self, g: CleanedGroup) -> Result<(), LogError> {
        let mut seg = g.segment;
        let base = seg.base_offset;
        let manifest = self.dir.join(SWAP_MANIFEST);
        write_durably(&manifest, format!("{base} {}\n", g.next_base).as_bytes())?;
        let swap = file_path(&self.dir, base, SWAP);
        fs::rename(&seg.log_path, &swap).map_err(|e| LogError::io(&swap, e))?;
        fs::sync_dir(&self.dir).map_err(|e| LogError::io(&self.dir, e))?;
        for &(old, _) in &g.replaces {
            super::retention::remove_segment_files(&self.dir, old)?;
        }
        let log_path = file_path(&self.dir, base, "log");
        fs::rename(&swap, &log_path).map_err(|e| LogError::io(&log_path, e))?;
        fs::sync_dir(&self.dir).map_err(|e| LogError::io(&self.dir, e))?;
        seg.log_path = log_path;
        for &(old, _) in &g.replaces {
            self.segments.remove(&old);
        }
        seg.write_indexes(&self.dir)?;
        self.segments.insert(base, seg);
        let _ = fs::remove_file(&manifest);
        Ok(())
    }

    /// Each idempotent producer's newest batch in the log: producer id -> its last offset.
    fn txns_aborted(&self) -> Vec<super::AbortedTxn> {
        self.aborted_all()
    }

    fn producer_last_offsets(&self) -> HashMap<i64, i64> {
        self.producers
            .iter()
            .filter_map(|(&pid, st)| st.last_offset().map(|o| (pid, o)))
            .collect()
    }
}

/// Finishes or undoes, at open, what a crash left of a cleaning (see the module's steps).
pub(super) fn recover_cleaner_files(dir: &Path) -> Result<(), LogError> {
    let mut swaps = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(&format!(".{CLEANED}")) {
            tracing::info!(path = %entry.path().display(), "removing an unfinished cleaned segment");
            fs::remove_file(&entry.path()).map_err(|e| LogError::io(entry.path(), e))?;
        } else if let Some(stem) = name.strip_suffix(&format!(".{SWAP}")) {
            if let Ok(base) = stem.parse::<i64>() {
                swaps.push(base);
            }
        }
    }
    let manifest = dir.join(SWAP_MANIFEST);
    let range = fs::read(&manifest).ok().and_then(|b| {
        let text = String::from_utf8(b).ok()?;
        let mut it = text.split_whitespace().map(str::parse::<i64>);
        Some((it.next()?.ok()?, it.next()?.ok()?))
    });
    for base in swaps {
        let swap = file_path(dir, base, SWAP);
        match range {
            Some((first, next)) if first == base => {
                tracing::warn!(path = %swap.display(), replaces_up_to = next, "finishing a cleaned segment's swap interrupted by a crash");
                for old in segment_bases(dir)?
                    .into_iter()
                    .filter(|&b| b >= first && b < next)
                {
                    super::retention::remove_segment_files(dir, old)?;
                }
                for ext in ["index", "timeindex"] {
                    let _ = fs::remove_file(&file_path(dir, base, ext));
                }
                let log = file_path(dir, base, "log");
                fs::rename(&swap, &log).map_err(|e| LogError::io(&log, e))?;
            }
            _ => {
                // Without its manifest a swap cannot be told from garbage, and step 2 comes
                // before step 3: the originals are still there.
                tracing::warn!(path = %swap.display(), "removing a swap file without its manifest");
                fs::remove_file(&swap).map_err(|e| LogError::io(&swap, e))?;
            }
        }
    }
    if manifest.exists() {
        let _ = fs::remove_file(&manifest);
        fs::sync_dir(dir).map_err(|e| LogError::io(dir, e))?;
    }
    Ok(())
}

fn segment_bases(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        let name = entry.file_name();
        if let Some(base) = name
            .to_string_lossy()
            .strip_suffix(".log")
            .and_then(|s| s.parse().ok())
        {
            out.push(base);
        }
    }
    Ok(out)
}
