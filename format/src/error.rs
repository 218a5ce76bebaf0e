//! Why a record batch was refused.

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
    /// Records outside `message.timestamp.{before,after}.max.ms` of the broker's clock (KIP-937):
    /// each bad record's index in its batch and Kafka's message for it (KIP-467 record errors).
    #[error("One or more records have been rejected due to invalid timestamp")]
    TimestampOutOfRange { records: Vec<(i32, String)> },
    /// Records without a key sent to a compacted topic: each one's index in its batch and
    /// Kafka's message for it.
    #[error("One or more records have been rejected")]
    NullKeyOnCompactedTopic { records: Vec<(i32, String)> },
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
    /// Control batches (transaction markers) come from transaction coordinators only.
    #[error("Clients are not allowed to write control records")]
    ControlFromClient,
    #[error("compression codec {codec} is unknown")]
    UnknownCompression { codec: i16 },
}
