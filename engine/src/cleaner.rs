//! The log cleaner (Kafka's `LogCleaner`) for `cleanup.policy=compact`: one task per shard
//! cleans the shard's own partitions, so no log is shared between threads, and at most
//! `log.cleaner.threads` shards clean at once (the process-wide slots below).
//!
//! A cleaning, for the log the plan picks ([`crate::partition_log::PartitionLog::clean_plan`]):
//!
//! 1. **Map**: the dirty segments (written since the last cleaning) are read and every key's
//!    latest offset recorded, bounded by `log.cleaner.dedupe.buffer.size` (shared between the
//!    cleaner slots): the section ends after the segment that fills it.
//! 2. **Copy**: every segment from the log's start to the section's end is rewritten, grouped
//!    up to `segment.bytes`, into `<base>.log.cleaned`, keeping a record when no later record of
//!    its key exists in the map (keyless records go, as in Kafka); batches keep their offsets
//!    (gaps are legal) and tombstones their KIP-534 delete horizon
//!    ([`ringlet_format::compact::clean_batch`]); then one fdatasync.
//! 3. **Swap**: the log puts the cleaned segments in place (crash-safe, see
//!    `partition_log/compaction.rs`) unless it changed meanwhile, and checkpoints the section's end.
//!
//! Every read and write goes through the shard's ring in `log.cleaner.io.buffer.size` chunks, so
//! producers and fetches on the shard run between them; `log.cleaner.io.max.bytes.per.second`
//! caps the bytes read and written per second.

use crate::config::now_ms;
use crate::error::LogError;
use crate::log_manager::{self, TopicPartition};
use crate::partition::Partition;
use crate::partition_log::{CleanPlan, CleanedGroup, SourceSegment};
use crate::runtime::io;
use crate::segment::{BatchMeta, Segment};
use bytes::Bytes;
use ringlet_format::batch::{self, BatchHeader};
use ringlet_format::compact::{self, Cleaned};
use std::cell::Cell;
use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The broker's `log.cleaner.*` settings.
#[derive(Clone, Debug)]
pub struct CleanerConfig {
    /// `log.cleaner.enable`.
    pub enable: bool,
    /// `log.cleaner.threads`: how many shards may clean at the same time.
    pub threads: usize,
    /// `log.cleaner.dedupe.buffer.size`: memory for the key maps, divided between the slots.
    pub dedupe_buffer_size: u64,
    /// `log.cleaner.io.buffer.size`: bytes per read and per write.
    pub io_buffer_size: usize,
    /// `log.cleaner.io.max.bytes.per.second`: read plus written, per cleaning.
    pub io_max_bytes_per_second: f64,
    /// `log.cleaner.backoff.ms`: the pause between checks for logs to clean.
    pub backoff: Duration,
    /// Largest decompressed records section a batch may have (`socket.request.max.bytes`).
    pub decompress_limit: usize,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            enable: true,
            threads: 1,
            dedupe_buffer_size: 128 << 20,
            io_buffer_size: 512 << 10,
            io_max_bytes_per_second: f64::MAX,
            backoff: Duration::from_millis(15_000),
            decompress_limit: 100 << 20,
        }
    }
}

/// What this shard's cleaner has done since start (metrics).
#[derive(Clone, Copy, Debug, Default)]
pub struct CleanerStats {
    pub runs: u64,
    /// Cleanings dropped because the log changed meanwhile.
    pub aborted: u64,
    pub failures: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
    pub time_ms: u64,
    /// Duration of the last cleaning.
    pub last_run_ms: u64,
}

thread_local! {
    static STATS: Cell<CleanerStats> = Cell::new(CleanerStats::default());
}

/// This shard's cleaner counters.
pub fn stats() -> CleanerStats {
    STATS.with(Cell::get)
}

fn note(f: impl FnOnce(&mut CleanerStats)) {
    STATS.with(|s| {
        let mut v = s.get();
        f(&mut v);
        s.set(v);
    });
}

/// Shards cleaning now, process-wide (bounded by `log.cleaner.threads`).
static CLEANING: AtomicUsize = AtomicUsize::new(0);

struct Slot;

impl Slot {
    fn take(max: usize) -> Option<Slot> {
        let n = CLEANING.fetch_add(1, Ordering::AcqRel);
        if n >= max.max(1) {
            CLEANING.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        CLEANING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs on the shard until the task is dropped: every `log.cleaner.backoff.ms`, cleans this
/// shard's compacted logs that are due, the dirtiest first.
pub async fn run(cfg: CleanerConfig) {
    if !cfg.enable {
        return;
    }
    loop {
        io::sleep(cfg.backoff).await;
        clean_due(&cfg).await;
    }
}

/// One pass over this shard's logs; returns how many were cleaned.
pub async fn clean_due(cfg: &CleanerConfig) -> usize {
    let now = now_ms();
    let mut due: Vec<(TopicPartition, Rc<Partition>, CleanPlan)> = log_manager::all()
        .into_iter()
        .filter_map(|(tp, p)| {
            let plan = p.clean_plan(now)?;
            Some((tp, p, plan))
        })
        .collect();
    due.sort_by(|a, b| b.2.dirty_ratio().total_cmp(&a.2.dirty_ratio()));
    let mut cleaned = 0;
    for (tp, part, plan) in due {
        let Some(_slot) = Slot::take(cfg.threads) else {
            break;
        };
        let started = Instant::now();
        let ratio = plan.dirty_ratio();
        match clean(&part, plan, cfg).await {
            Ok(true) => {
                cleaned += 1;
                let ms = started.elapsed().as_millis() as u64;
                note(|s| {
                    s.runs += 1;
                    s.time_ms += ms;
                    s.last_run_ms = ms;
                });
                tracing::info!(partition = %tp, dirty_ratio = ratio, ms, "log cleaned");
            }
            Ok(false) => {
                note(|s| s.aborted += 1);
                tracing::debug!(partition = %tp, "cleaning dropped: the log changed meanwhile");
            }
            Err(e) => {
                note(|s| s.failures += 1);
                tracing::error!(partition = %tp, error = %e, "log cleaning failed");
            }
        }
    }
    cleaned
}

/// Cleans one log by `plan`; false when the log changed meanwhile and nothing was installed.
pub async fn clean(
    part: &Rc<Partition>,
    mut plan: CleanPlan,
    cfg: &CleanerConfig,
) -> Result<bool, LogError> {
    let mut throttle = Throttle::new(cfg.io_max_bytes_per_second);
    let budget = cfg.dedupe_buffer_size / cfg.threads.max(1) as u64;
    let mut map: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut used = 0u64;
    let mut end = plan.end;
    for i in plan.dirty_from..plan.sources.len() {
        let mut reader = BatchReader::new(plan.sources[i].clone(), cfg.io_buffer_size);
        while let Some(b) = reader.next().await? {
            throttle.account(b.len()).await;
            let h = BatchHeader::parse(&b)?;
            if h.is_control() || plan.is_aborted(h.producer_id, h.base_offset) {
                continue;
            }
            let (h, plain) = compact::plain_records(&b, cfg.decompress_limit)?;
            for r in compact::parse_records(&h, &plain)? {
                let Some(k) = r.key else { continue };
                match map.get_mut(k) {
                    Some(o) => *o = r.offset,
                    None => {
                        // Key bytes plus the map's own cost per entry.
                        used += k.len() as u64 + 56;
                        map.insert(k.to_vec(), r.offset);
                    }
                }
            }
        }
        if used >= budget && i + 1 < plan.sources.len() {
            end = plan.sources[i + 1].base;
            plan.sources.truncate(i + 1);
            break;
        }
    }
    let mut groups: Vec<CleanedGroup> = Vec::new();
    let mut from = 0;
    while from < plan.sources.len() {
        let to = group_end(&plan.sources, from, plan.segment_bytes);
        let next_base = plan.sources.get(to).map_or(end, |s| s.base);
        match copy_group(&plan, &plan.sources[from..to], &map, cfg, &mut throttle).await {
            Ok(segment) => groups.push(CleanedGroup {
                segment,
                replaces: plan.sources[from..to]
                    .iter()
                    .map(|s| (s.base, s.size))
                    .collect(),
                next_base,
            }),
            Err(e) => {
                for g in &groups {
                    let _ = crate::runtime::fs::remove_file(&g.segment.log_path);
                }
                return Err(e);
            }
        }
        from = to;
    }
    part.install_cleaned(groups, end)
}

/// The end (exclusive) of the group of segments starting at `from`: as many as fit in
/// `segment_bytes` (at least one) whose offsets stay within the index's 32-bit range.
fn group_end(sources: &[SourceSegment], from: usize, segment_bytes: u64) -> usize {
    let base = sources[from].base;
    let mut size = sources[from].size;
    let mut to = from + 1;
    while let Some(s) = sources.get(to) {
        if size + s.size > segment_bytes || s.next_offset - base > i64::from(i32::MAX) {
            break;
        }
        size += s.size;
        to += 1;
    }
    to
}

/// Writes the cleaned copy of `sources` (one group) as `<base>.log.cleaned` and syncs it.
async fn copy_group(
    plan: &CleanPlan,
    sources: &[SourceSegment],
    map: &HashMap<Vec<u8>, i64>,
    cfg: &CleanerConfig,
    throttle: &mut Throttle,
) -> Result<Segment, LogError> {
    let now = plan.now_ms;
    let mut seg = CleanedGroup::create(&plan.dir, sources[0].base, now_ms())?;
    let file = seg.file.clone();
    let path = seg.log_path.clone();
    let fail = |e| LogError::io(&path, e);
    let mut pending: Vec<Bytes> = Vec::new();
    let (mut pending_len, mut written) = (0usize, 0u64);
    let keep = |r: &compact::Record<'_>| {
        r.key
            .is_some_and(|k| map.get(k).is_none_or(|&latest| latest <= r.offset))
    };
    for src in sources {
        let mut reader = BatchReader::new(src.clone(), cfg.io_buffer_size);
        while let Some(b) = reader.next().await? {
            throttle.account(b.len()).await;
            let h = BatchHeader::parse(&b)?;
            let aborted = !h.is_control() && plan.is_aborted(h.producer_id, h.base_offset);
            let out: Option<Bytes> = if h.is_control() {
                Some(b)
            } else if aborted {
                note(|s| s.records_removed += h.record_count.max(0) as u64);
                None
            } else {
                let cleaned = compact::clean_batch(
                    &b,
                    cfg.decompress_limit,
                    now,
                    plan.delete_retention_ms,
                    keep,
                )?;
                match cleaned {
                    Cleaned::Kept => Some(b),
                    Cleaned::Rewritten(v) => Some(Bytes::from(v)),
                    Cleaned::Empty => {
                        note(|s| s.records_removed += h.record_count.max(0) as u64);
                        let last_of_producer = h.producer_id >= 0
                            && plan.last_batches.get(&h.producer_id) == Some(&h.last_offset());
                        last_of_producer.then(|| Bytes::from(compact::empty_batch(&b)))
                    }
                }
            };
            let Some(out) = out else { continue };
            let oh = BatchHeader::parse(&out)?;
            if oh.record_count < h.record_count {
                note(|s| s.records_removed += (h.record_count - oh.record_count) as u64);
            }
            let meta = BatchMeta {
                base_offset: oh.base_offset,
                last_offset: oh.last_offset(),
                size: out.len() as u32,
                max_timestamp: oh.max_timestamp,
            };
            let at = seg.size;
            seg.on_batch_written(&meta, at, plan.index_interval);
            pending_len += out.len();
            pending.push(out);
            if pending_len >= cfg.io_buffer_size {
                throttle.account(pending_len).await;
                io::write_all(
                    file.as_raw_fd(),
                    std::mem::take(&mut pending),
                    Some(written),
                )
                .await
                .map_err(fail)?;
                written += pending_len as u64;
                note(|s| s.bytes_written += pending_len as u64);
                pending_len = 0;
            }
        }
    }
    if pending_len > 0 {
        io::write_all(file.as_raw_fd(), pending, Some(written))
            .await
            .map_err(fail)?;
        note(|s| s.bytes_written += pending_len as u64);
    }
    io::fdatasync(file.as_raw_fd()).await.map_err(fail)?;
    seg.flushed_size = seg.size;
    Ok(seg)
}

/// Reads a segment's batches in chunks through the ring.
struct BatchReader {
    src: SourceSegment,
    chunk: usize,
    pos: u64,
    buf: Bytes,
    buf_at: u64,
}

impl BatchReader {
    fn new(src: SourceSegment, chunk: usize) -> BatchReader {
        BatchReader {
            src,
            chunk: chunk.max(batch::HEADER_SIZE),
            pos: 0,
            buf: Bytes::new(),
            buf_at: 0,
        }
    }

    /// Makes `[pos, pos + len)` readable from `buf`.
    async fn fill(&mut self, len: usize) -> Result<bool, LogError> {
        let have = self.buf_at + self.buf.len() as u64;
        if self.pos >= self.buf_at && self.pos + len as u64 <= have {
            return Ok(true);
        }
        let want = len.max(self.chunk).min((self.src.size - self.pos) as usize);
        let v = io::read_at(self.src.file.as_raw_fd(), self.pos, want)
            .await
            .map_err(|e| LogError::io(format!("segment {}", self.src.base), e))?;
        note(|s| s.bytes_read += v.len() as u64);
        self.buf = Bytes::from(v);
        self.buf_at = self.pos;
        Ok(self.buf.len() >= len)
    }

    /// The next whole batch, or `None` at the segment's end.
    async fn next(&mut self) -> Result<Option<Bytes>, LogError> {
        if self.pos + batch::HEADER_SIZE as u64 > self.src.size {
            return Ok(None);
        }
        if !self.fill(batch::HEADER_SIZE).await? {
            return Ok(None);
        }
        let at = (self.pos - self.buf_at) as usize;
        let h = BatchHeader::parse(&self.buf[at..])?;
        let size = h.size();
        if size < batch::HEADER_SIZE || !self.fill(size).await? {
            return Err(LogError::Corrupt {
                path: format!("segment {}", self.src.base).into(),
                position: self.pos,
                reason: format!("batch of {size} bytes runs past the segment"),
            });
        }
        let at = (self.pos - self.buf_at) as usize;
        let b = self.buf.slice(at..at + size);
        self.pos += size as u64;
        Ok(Some(b))
    }
}

/// Holds a cleaning to `log.cleaner.io.max.bytes.per.second`.
struct Throttle {
    rate: f64,
    start: Instant,
    bytes: f64,
}

impl Throttle {
    fn new(rate: f64) -> Throttle {
        Throttle {
            rate,
            start: Instant::now(),
            bytes: 0.0,
        }
    }

    async fn account(&mut self, n: usize) {
        self.bytes += n as f64;
        if !self.rate.is_finite() || self.rate <= 0.0 || self.rate >= f64::MAX {
            return;
        }
        let due = Duration::from_secs_f64(self.bytes / self.rate);
        let elapsed = self.start.elapsed();
        if due > elapsed + Duration::from_millis(5) {
            io::sleep(due - elapsed).await;
        }
    }
}
