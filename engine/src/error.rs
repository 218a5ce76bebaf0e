//! Engine errors. Each keeps its cause; the server maps them to Kafka error codes in one place.

use std::path::PathBuf;

/// Why a record batch was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BatchError {
    #[error("record batch truncated: {have} bytes, need {need}")]
    Truncated { have: usize, need: usize },
    #[error("record batch length {batch_length} is out of range")]
    InvalidLength { batch_length: i32 },
    #[error("record batch magic {magic} is not supported (only magic 2)")]
    UnsupportedMagic { magic: i8 },
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("record count {count} does not match lastOffsetDelta {last_offset_delta}")]
    CountMismatch { count: i32, last_offset_delta: i32 },
    #[error("record {index} is malformed: {reason}")]
    InvalidRecord { index: i32, reason: &'static str },
    #[error("record batch of {size} bytes exceeds max.message.bytes {max}")]
    TooLarge { size: usize, max: usize },
    #[error("record batch has invalid timestamp {timestamp}")]
    InvalidTimestamp { timestamp: i64 },
    #[error("producer {producer_id}: sequence {sequence} does not follow {last_sequence}")]
    OutOfOrderSequence {
        producer_id: i64,
        sequence: i32,
        last_sequence: i32,
    },
    #[error("producer {producer_id}: epoch {epoch} is older than {current_epoch}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    #[error("compression codec {codec} is unknown")]
    UnknownCompression { codec: i16 },
}

/// Errors from the partition log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("invalid record batch: {0}")]
    Batch(#[from] BatchError),
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("corrupt data in {path} at position {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("the log is offline after an earlier storage error")]
    Offline,
    #[error("the append queue of this partition is full")]
    QueueFull,
    #[error("replicated batch at offset {got} does not continue the log end {expected}")]
    NotContiguous { expected: i64, got: i64 },
}

impl LogError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> LogError {
        LogError::Io {
            path: path.into(),
            source,
        }
    }
}
