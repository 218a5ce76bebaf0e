//! Per-log settings, with Kafka's names and defaults (topic-level names in comments).

use ringlet_format::batch::TimestampType;

/// Settings of one partition log.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// `log.segment.bytes` / `segment.bytes`: roll when the active segment would exceed this.
    pub segment_bytes: u64,
    /// `log.roll.ms` (`log.roll.hours`) / `segment.ms`: roll a non-empty segment this old.
    pub segment_ms: i64,
    /// `log.index.interval.bytes` / `index.interval.bytes`: bytes between offset index entries.
    pub index_interval_bytes: usize,
    /// `log.index.size.max.bytes` / `segment.index.bytes`: roll when the offset index is this big.
    pub segment_index_bytes: usize,
    /// `log.retention.ms` (`minutes`, `hours`) / `retention.ms`: -1 keeps forever.
    pub retention_ms: i64,
    /// `log.retention.bytes` / `retention.bytes`: per partition; -1 is unlimited.
    pub retention_bytes: i64,
    /// `log.flush.interval.messages` / `flush.messages`: fdatasync once this many are unflushed.
    pub flush_interval_messages: u64,
    /// `log.flush.interval.ms` / `flush.ms`: fdatasync data older than this.
    pub flush_interval_ms: i64,
    /// `message.max.bytes` / `max.message.bytes`: largest record batch accepted.
    pub max_message_bytes: usize,
    /// `log.message.timestamp.type` / `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `log.message.timestamp.before.max.ms` / `message.timestamp.before.max.ms` (KIP-937): a
    /// CreateTime record further than this behind the broker's clock is refused.
    pub timestamp_before_max_ms: i64,
    /// `log.message.timestamp.after.max.ms` / `message.timestamp.after.max.ms`: the same, ahead.
    pub timestamp_after_max_ms: i64,
    /// Appends queued per partition before producers are told to back off.
    pub append_queue_max: usize,
    /// Start writeback (sync_file_range, not a flush) after this many written bytes, so dirty
    /// pages never pile up to the kernel's throttling point; 0 turns it off.
    pub writeback_bytes: u64,
    /// `ringlet.log.direct.io`: write segments with `O_DIRECT` (aligned group writes straight to
    /// the device, recent data served from the shard's tail cache) where the file system allows
    /// it; `false` writes through the page cache, Kafka's way. Durability is unchanged either way:
    /// the flush settings above decide when an fdatasync runs.
    pub direct_io: bool,
    /// `ringlet.log.tail.cache.bytes`: memory per shard for the tail cache of direct mode.
    pub tail_cache_bytes: u64,
    /// `ringlet.log.read.ahead.bytes`: in direct mode, fetches that miss the tail cache read the
    /// segment with `O_DIRECT` in windows of this size (block aligned), the next window read
    /// ahead; 0 reads through the page cache instead.
    pub read_ahead_bytes: usize,
    /// `log.preallocate` / `preallocate`: reserve `segment_bytes` of disk for each new segment
    /// (`fallocate` with `FALLOC_FL_KEEP_SIZE`, so the file's size stays its batches' and
    /// recovery is unchanged); the reservation past the last batch is released when the segment
    /// stops being the active one.
    pub preallocate: bool,
    /// `cleanup.policy` holds `delete`: `retention.ms` and `retention.bytes` delete old segments.
    pub delete: bool,
    /// `cleanup.policy` holds `compact`: the log cleaner keeps the latest record of each key.
    pub compact: bool,
    /// `log.cleaner.delete.retention.ms` / `delete.retention.ms`: how long a tombstone stays
    /// readable after its batch was first cleaned.
    pub delete_retention_ms: i64,
    /// `log.cleaner.min.compaction.lag.ms` / `min.compaction.lag.ms`: a segment whose newest
    /// record is younger than this is not compacted yet.
    pub min_compaction_lag_ms: i64,
    /// `log.cleaner.max.compaction.lag.ms` / `max.compaction.lag.ms`: a dirty segment older than
    /// this is compacted whatever the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `log.cleaner.min.cleanable.ratio` / `min.cleanable.dirty.ratio`: the share of the log's
    /// non-active bytes not yet compacted above which the cleaner runs.
    pub min_cleanable_dirty_ratio: f64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            flush_interval_messages: u64::MAX,
            flush_interval_ms: i64::MAX,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            append_queue_max: 4096,
            writeback_bytes: 1 << 20,
            direct_io: true,
            tail_cache_bytes: 64 << 20,
            read_ahead_bytes: 1 << 20,
            preallocate: false,
            delete: true,
            compact: false,
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}

impl LogConfig {
    /// Entries the offset index may hold before the segment rolls.
    pub fn max_index_entries(&self) -> usize {
        (self.segment_index_bytes / crate::offset_index::ENTRY_SIZE).max(1)
    }
}

/// Milliseconds on the monotonic clock since its first reading in this process: for intervals
/// (replica lag, checkpoint periods) that a step of the wall clock must neither stretch nor cut.
pub fn mono_ms() -> i64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as i64
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
