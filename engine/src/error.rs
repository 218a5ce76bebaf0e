//! Engine errors. Each keeps its cause; the server maps them to Kafka error codes in one place.

use std::path::PathBuf;

pub use ringlet_format::BatchError;

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
    /// DeleteRecords on a log whose `cleanup.policy` lacks `delete`.
    #[error("records can not be deleted due to the configured policy")]
    DeletePolicy,
}

impl LogError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> LogError {
        LogError::Io {
            path: path.into(),
            source,
        }
    }
}
